// bfloat16 storage for the CPU kernels, framework-free: the top 16 bits of an IEEE
// float32 (8 exponent bits, 7 stored fraction bits, unit roundoff 2^-8). The kernels
// keep bfloat16 only in memory: they widen on load (exact), compute and accumulate
// in float32, and narrow on store with round-to-nearest-even (NaN stays NaN).
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

namespace bfloat16_detail {

// Vectors of `kLanes` bfloat16 bit patterns and of their float32 bit patterns.
template <int kLanes>
struct Lanes {
  typedef float Float __attribute__((vector_size(4 * kLanes)));
  typedef uint16_t Narrow __attribute__((vector_size(2 * kLanes)));
  typedef uint32_t Wide __attribute__((vector_size(4 * kLanes)));
  typedef int32_t WideInt __attribute__((vector_size(4 * kLanes)));
};

// ToBFloat16 on a vector of float32 bit patterns: the one copy of the rounding rule.
template <int kLanes>
inline typename Lanes<kLanes>::Narrow RoundBits(typename Lanes<kLanes>::Wide u) {
  typedef Lanes<kLanes> L;
  const typename L::WideInt is_nan = (u & 0x7fffffffu) > 0x7f800000u;
  const typename L::Wide rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const typename L::Wide nan = (u >> 16) | 0x0040u;
  return __builtin_convertvector(is_nan ? nan : rounded, typename L::Narrow);
}

}  // namespace bfloat16_detail

// A vector of kLanes floats (a GCC vector extension) from kLanes bfloat16 values at `in`
// (exact: a 16-bit shift, vpmovzxwd + vpslld), and its kLanes values rounded as ToBFloat16
// rounds to `out`. The sampling loops convert a vector of channels at a time with these.
template <int kLanes>
inline typename bfloat16_detail::Lanes<kLanes>::Float WidenLanes(const BFloat16* in) {
  typedef bfloat16_detail::Lanes<kLanes> L;
  typename L::Narrow n;
  std::memcpy(&n, in, sizeof(n));
  const typename L::Wide w = __builtin_convertvector(n, typename L::Wide) << 16;
  typename L::Float f;
  std::memcpy(&f, &w, sizeof(f));
  return f;
}
template <int kLanes>
inline void NarrowLanes(typename bfloat16_detail::Lanes<kLanes>::Float f, BFloat16* out) {
  typename bfloat16_detail::Lanes<kLanes>::Wide u;
  std::memcpy(&u, &f, sizeof(u));
  const auto n = bfloat16_detail::RoundBits<kLanes>(u);
  std::memcpy(out, &n, sizeof(n));
}

// out[i] = float(in[i]) for i < count; exact.
inline void WidenBFloat16(const BFloat16* in, int64_t count, float* out) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const auto f = WidenLanes<16>(in + i);
    std::memcpy(out + i, &f, sizeof(f));
  }
  for (; i < count; ++i) out[i] = ToFloat(in[i]);
}

// out[i] = bfloat16(in[i]) for i < count, round to nearest even, NaN kept.
inline void NarrowToBFloat16(const float* in, int64_t count, BFloat16* out) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    typename bfloat16_detail::Lanes<16>::Float f;
    std::memcpy(&f, in + i, sizeof(f));
    NarrowLanes<16>(f, out + i);
  }
  for (; i < count; ++i) out[i] = ToBFloat16(in[i]);
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
