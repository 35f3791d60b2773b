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
#include <utility>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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

// ToBFloat16 on a vector of float32 bit patterns: the one copy of the rounding rule. (Vectors
// go by reference or pointer here: the op glue includes this header without the kernels' -march,
// and GCC warns about the ABI of vectors passed by value.)
template <int kLanes>
inline void RoundBits(const typename Lanes<kLanes>::Wide& u, typename Lanes<kLanes>::Narrow* out) {
  typedef Lanes<kLanes> L;
  const typename L::WideInt is_nan = (u & 0x7fffffffu) > 0x7f800000u;
  const typename L::Wide rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const typename L::Wide nan = (u >> 16) | 0x0040u;
  *out = __builtin_convertvector(is_nan ? nan : rounded, typename L::Narrow);
}

}  // namespace bfloat16_detail

// A vector of kLanes floats (a GCC vector extension) from kLanes bfloat16 values at `in`
// (exact: a 16-bit shift, vpmovzxwd + vpslld), and its kLanes values rounded as ToBFloat16
// rounds to `out`. The sampling loops convert a vector of channels at a time with these.
template <int kLanes>
inline void WidenLanes(const BFloat16* in, typename bfloat16_detail::Lanes<kLanes>::Float* out) {
  typedef bfloat16_detail::Lanes<kLanes> L;
#ifdef __AVX2__
  // GCC splits the generic conversion below into 128-bit halves for 8 lanes (measured: a
  // quarter of the bfloat16 sampling loop's time); one vpmovzxwd does it.
  if constexpr (kLanes == 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in)));
    *out = typename L::Float(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    return;
  }
#endif
  typename L::Narrow n;
  std::memcpy(&n, in, sizeof(n));
  const typename L::Wide w = __builtin_convertvector(n, typename L::Wide) << 16;
  std::memcpy(out, &w, sizeof(*out));
}
template <int kLanes>
inline void NarrowLanes(const typename bfloat16_detail::Lanes<kLanes>::Float& f, BFloat16* out) {
  typename bfloat16_detail::Lanes<kLanes>::Wide u;
  std::memcpy(&u, &f, sizeof(u));
  typename bfloat16_detail::Lanes<kLanes>::Narrow n;
  bfloat16_detail::RoundBits<kLanes>(u, &n);
  std::memcpy(out, &n, sizeof(n));
}

// out[i] = float(in[i]) for i < count; exact.
inline void WidenBFloat16(const BFloat16* in, int64_t count, float* out) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    typename bfloat16_detail::Lanes<16>::Float f;
    WidenLanes<16>(in + i, &f);
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
  parallel_for(
      (count + kConvertChunk - 1) / kConvertChunk, kConvertChunk, [&](int64_t begin, int64_t end) {
        const int64_t first = begin * kConvertChunk;
        WidenBFloat16(in + first, std::min(end * kConvertChunk, count) - first, out.get() + first);
      });
  return out;
}

inline void NarrowAll(const float* in, int64_t count, BFloat16* out,
                      const ParallelFor& parallel_for) {
  parallel_for(
      (count + kConvertChunk - 1) / kConvertChunk, kConvertChunk, [&](int64_t begin, int64_t end) {
        const int64_t first = begin * kConvertChunk;
        NarrowToBFloat16(in + first, std::min(end * kConvertChunk, count) - first, out + first);
      });
}

// Runs a float32 computation on bfloat16 tensors, each given as (data, element count):
// body(in, out) gets float32 copies of the inputs and float32 buffers for the outputs, which are
// rounded into the bfloat16 outputs once, when body returns. For the backward passes whose
// scatter must sum in float32 and that do not read bfloat16 in place.
template <size_t kIn, size_t kOut, typename Body>
void InFloat32(const std::pair<const BFloat16*, int64_t> (&inputs)[kIn],
               const std::pair<BFloat16*, int64_t> (&outputs)[kOut],
               const ParallelFor& parallel_for, Body body) {
  FloatBuffer widened[kIn], sums[kOut];
  const float* in[kIn];
  float* out[kOut];
  for (size_t i = 0; i < kIn; ++i) {
    widened[i] = WidenAll(inputs[i].first, inputs[i].second, parallel_for);
    in[i] = widened[i].get();
  }
  for (size_t i = 0; i < kOut; ++i) {
    sums[i] = NewFloatBuffer(outputs[i].second);
    out[i] = sums[i].get();
  }
  body(static_cast<const float* const*>(in), static_cast<float* const*>(out));
  for (size_t i = 0; i < kOut; ++i) {
    NarrowAll(sums[i].get(), outputs[i].second, outputs[i].first, parallel_for);
  }
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_BFLOAT16_H_
