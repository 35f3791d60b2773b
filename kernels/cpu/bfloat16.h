// bfloat16 storage for the CPU kernels, framework-free: the top 16 bits of an IEEE
// float32 (8 exponent bits, 7 stored fraction bits, unit roundoff 2^-8). The kernels
// keep bfloat16 only in memory: they widen on load (exact), compute and accumulate
// in float32, and narrow on store with round-to-nearest-even (NaN stays NaN). The
// sampling kernels (deformable_offsets, bilinear_sample) round y and the gradients once, at
// the end; their gradients are accumulated in float32 buffers of their full size.
#ifndef EDVR_KERNELS_CPU_BFLOAT16_H_
#define EDVR_KERNELS_CPU_BFLOAT16_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "parallel.h"

namespace edvr {

// One bfloat16 value as its bit pattern; layout-compatible with Eigen::bfloat16.
struct BFloat16 {
  uint16_t bits;
};
static_assert(sizeof(BFloat16) == 2, "BFloat16 must be 2 bytes");

inline float ToFloat(BFloat16 v) {
  const uint32_t wide = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof(f));
  return f;
}

// Round to nearest, ties to even. A NaN keeps its sign and top payload bits and
// gets the quiet bit, so it can never round into an infinity.
inline BFloat16 ToBFloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{uint16_t((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{uint16_t(u >> 16)};
}

// f rounded to bfloat16 precision, kept as float32.
inline float RoundToBFloat16(float f) { return ToFloat(ToBFloat16(f)); }

// out[i] = float(in[i]) for i < count; exact.
inline void WidenBFloat16(const BFloat16* in, int64_t count, float* out) {
  typedef uint16_t Narrow __attribute__((vector_size(32)));
  typedef uint32_t Wide __attribute__((vector_size(64)));
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    Narrow n;
    std::memcpy(&n, in + i, sizeof(n));
    const Wide w = __builtin_convertvector(n, Wide) << 16;
    std::memcpy(out + i, &w, sizeof(w));
  }
  for (; i < count; ++i) out[i] = ToFloat(in[i]);
}

// out[i] = bfloat16(in[i]) for i < count, round to nearest even, NaN kept.
inline void NarrowToBFloat16(const float* in, int64_t count, BFloat16* out) {
  typedef uint32_t Wide __attribute__((vector_size(64)));
  typedef int32_t WideInt __attribute__((vector_size(64)));
  typedef uint16_t Narrow __attribute__((vector_size(32)));
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    Wide u;
    std::memcpy(&u, in + i, sizeof(u));
    const WideInt is_nan = (u & 0x7fffffffu) > 0x7f800000u;
    const Wide rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const Wide nan = (u >> 16) | 0x0040u;
    const Narrow n = __builtin_convertvector(is_nan ? nan : rounded, Narrow);
    std::memcpy(out + i, &n, sizeof(n));
  }
  for (; i < count; ++i) out[i] = ToBFloat16(in[i]);
}

// data[i] = RoundToBFloat16(data[i]) for i < count.
inline void RoundToBFloat16InPlace(float* data, int64_t count) {
  typedef uint32_t Wide __attribute__((vector_size(64)));
  typedef int32_t WideInt __attribute__((vector_size(64)));
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    Wide u;
    std::memcpy(&u, data + i, sizeof(u));
    const WideInt is_nan = (u & 0x7fffffffu) > 0x7f800000u;
    const Wide rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const Wide nan = (u | 0x00400000u) & 0xffff0000u;
    const Wide r = is_nan ? nan : rounded;
    std::memcpy(data + i, &r, sizeof(r));
  }
  for (; i < count; ++i) data[i] = RoundToBFloat16(data[i]);
}

// Whole tensors, converted on the thread pool in chunks of whole vectors.
constexpr int64_t kConvertChunk = 1 << 14;

// A float32 buffer left uninitialised: zero-filling tens of MB on one thread costs more than
// the conversion that fills it. Users must write every element.
using FloatBuffer = std::unique_ptr<float[]>;
inline FloatBuffer NewFloatBuffer(int64_t count) { return FloatBuffer(new float[count]); }

inline FloatBuffer WidenAll(const BFloat16* in, int64_t count, const ParallelFor& parallel_for) {
  FloatBuffer out = NewFloatBuffer(count);
  parallel_for((count + kConvertChunk - 1) / kConvertChunk, kConvertChunk,
               [&](int64_t begin, int64_t end) {
                 const int64_t first = begin * kConvertChunk;
                 WidenBFloat16(in + first, std::min(end * kConvertChunk, count) - first,
                               out.get() + first);
               });
  return out;
}

inline void NarrowAll(const float* in, int64_t count, BFloat16* out,
                      const ParallelFor& parallel_for) {
  parallel_for((count + kConvertChunk - 1) / kConvertChunk, kConvertChunk,
               [&](int64_t begin, int64_t end) {
                 const int64_t first = begin * kConvertChunk;
                 NarrowToBFloat16(in + first, std::min(end * kConvertChunk, count) - first,
                                  out + first);
               });
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_BFLOAT16_H_
