// The bfloat16 matrix product of the fused deformable convolution: C[m, n] = A[m, k] . B[k, n]
// with A and B in bfloat16 and C accumulated and written in float32.
//
// Built for vdpbf16ps (AVX512_BF16) when the compiler targets it (__AVX512BF16__, e.g. with
// -march=native on such a CPU): _mm512_dpbf16_ps(acc, a, b) adds a[2i]*b[2i] + a[2i+1]*b[2i+1]
// to float lane i, so the reduction runs over adjacent pairs of k. B is therefore packed as
// pairs of rows (PackPairs) and each row of A is read a pair (32 bits) at a time. Elsewhere a
// portable path with vector extensions computes the same sums from the same layout. Products of
// two bfloat16 values are exact in float32, so both paths differ only in summation order.
#ifndef EDVR_KERNELS_CPU_GEMM_BF16_H_
#define EDVR_KERNELS_CPU_GEMM_BF16_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bfloat16.h"

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

namespace edvr {

// B [k, n] packed as pairs of rows: B[kk, j] at data[(kk / 2) * row + 2 * j + kk % 2], with
// k rounded up to even and n up to a multiple of 16 (one vector of float lanes); padding is 0.
struct PackedPairs {
  int64_t k = 0, n = 0, row = 0;  // row: elements per pair of rows, 2 * padded n
  std::vector<BFloat16> data;
};

// Packs B [k, n] into *p (reusing its storage); b(kk, j) returns element (kk, j) as BFloat16.
template <typename Element>
void PackPairs(int64_t k, int64_t n, Element b, PackedPairs* p) {
  p->k = k;
  p->n = n;
  p->row = 2 * ((n + 15) / 16 * 16);
  p->data.assign((k + 1) / 2 * p->row, BFloat16{0});
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t j = 0; j < n; ++j) p->data[kk / 2 * p->row + 2 * j + kk % 2] = b(kk, j);
  }
}
template <typename Element>
PackedPairs PackPairs(int64_t k, int64_t n, Element b) {
  PackedPairs p;
  PackPairs(k, n, b, &p);
  return p;
}

// Row pairs (2i, 2i + 1) of rows [count, width] interleaved, as PackPairs packs B (without
// padding width): out[i * 2 * width + 2 * j + r] = rows[(2i + r) * width + j], the missing
// row of an odd count read as 0. Read as A with PairedRows{out + 2 * j0, 2, 2 * width}, this
// is rows^T from column j0 on, with the reduction over the rows.
inline void InterleaveRowPairs(const BFloat16* rows, int64_t count, int64_t width, BFloat16* out) {
  typedef uint16_t Narrow __attribute__((vector_size(32)));
  typedef uint32_t Wide __attribute__((vector_size(64)));
  for (int64_t i = 0; 2 * i < count; ++i) {
    const BFloat16* even = rows + 2 * i * width;
    const BFloat16* odd = 2 * i + 1 < count ? even + width : nullptr;
    BFloat16* pair = out + i * 2 * width;
    int64_t j = 0;
    for (; odd && j + 16 <= width; j += 16) {
      Narrow lo, hi;
      std::memcpy(&lo, even + j, sizeof(lo));
      std::memcpy(&hi, odd + j, sizeof(hi));
      const Wide w = __builtin_convertvector(lo, Wide) | (__builtin_convertvector(hi, Wide) << 16);
      std::memcpy(pair + 2 * j, &w, sizeof(w));
    }
    for (; j < width; ++j) {
      pair[2 * j] = even[j];
      pair[2 * j + 1] = odd ? odd[j] : BFloat16{0};
    }
  }
}

// A [m, k] read a pair of adjacent elements of the reduction (32 bits) at a time:
// A(r, 2 * kp + i) at data[r * row + kp * pair + i]. A row-major matrix has pair = 2; the
// rows of a matrix packed by pairs of rows, read as the columns of A, have row = 2.
struct PairedRows {
  const BFloat16* data;
  int64_t row, pair;
};

namespace gemm_bf16_detail {

constexpr int kLanes = 16;  // float32 lanes of one 512-bit accumulator

// Stores `valid` (<= kLanes) leading lanes of acc at out. acc is taken by value: a reference
// to the accumulator array would make the compiler keep it in memory through the k loop.
// With accumulate, adds them to what is there.
template <typename V>
inline void StoreLanes(float* out, V acc, int64_t valid, bool accumulate) {
  float lanes[kLanes];
  std::memcpy(lanes, &acc, sizeof(lanes));
  if (valid == kLanes) {
    if (accumulate) {
      float old[kLanes];
      std::memcpy(old, out, sizeof(old));
      for (int i = 0; i < kLanes; ++i) lanes[i] += old[i];
    }
    std::memcpy(out, lanes, sizeof(lanes));
    return;
  }
  for (int64_t i = 0; i < valid; ++i) out[i] = accumulate ? out[i] + lanes[i] : lanes[i];
}

// C[kRows, kVectors * 16] (+)= A[kRows, 2 * pairs] . B (packed, pointing at the panel's first
// column), accumulators in registers for the whole reduction; `valid` columns are stored.
template <int kRows, int kVectors>
inline void Block(int64_t pairs, PairedRows a, const BFloat16* b, int64_t ldb, float* c,
                  int64_t ldc, int64_t valid, bool accumulate) {
#ifdef __AVX512BF16__
  __m512 acc[kRows][kVectors];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t kp = 0; kp < pairs; ++kp) {
    __m512bh bv[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      bv[v] = (__m512bh)_mm512_loadu_si512(b + kp * ldb + v * 2 * kLanes);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a.data + r * a.row + kp * a.pair, sizeof(pair));
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
#else
  typedef float VF __attribute__((vector_size(64)));
  typedef uint32_t VU __attribute__((vector_size(64)));
  VF acc[kRows][kVectors] = {};
  for (int64_t kp = 0; kp < pairs; ++kp) {
    VF even[kVectors], odd[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      VU raw;
      std::memcpy(&raw, b + kp * ldb + v * 2 * kLanes, sizeof(raw));
      const VU lo = raw << 16, hi = raw & 0xffff0000u;  // rows 2kp and 2kp+1, widened
      std::memcpy(&even[v], &lo, sizeof(lo));
      std::memcpy(&odd[v], &hi, sizeof(hi));
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const BFloat16* a_pair = a.data + r * a.row + kp * a.pair;
      const float a0 = ToFloat(a_pair[0]), a1 = ToFloat(a_pair[1]);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] += a0 * even[v] + a1 * odd[v];
    }
  }
#endif
  // Fully unrolled, so that acc stays in registers (an indexed loop keeps a copy in memory).
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      if (v * kLanes < valid) {
        StoreLanes(c + r * ldc + v * kLanes, acc[r][v],
                   std::min<int64_t>(kLanes, valid - v * kLanes), accumulate);
      }
    }
  }
}

// All rows of one column panel, six rows at a time.
template <int kVectors>
inline void Panel(int64_t m, int64_t pairs, PairedRows a, const BFloat16* b, int64_t ldb, float* c,
                  int64_t ldc, int64_t valid, bool accumulate) {
  constexpr int kRows = 6;
  int64_t r = 0;
  for (; r + kRows <= m; r += kRows) {
    Block<kRows, kVectors>(pairs, {a.data + r * a.row, a.row, a.pair}, b, ldb, c + r * ldc, ldc,
                           valid, accumulate);
  }
  const PairedRows rest{a.data + r * a.row, a.row, a.pair};
  float* c_rest = c + r * ldc;
  switch (m - r) {
    case 1: return Block<1, kVectors>(pairs, rest, b, ldb, c_rest, ldc, valid, accumulate);
    case 2: return Block<2, kVectors>(pairs, rest, b, ldb, c_rest, ldc, valid, accumulate);
    case 3: return Block<3, kVectors>(pairs, rest, b, ldb, c_rest, ldc, valid, accumulate);
    case 4: return Block<4, kVectors>(pairs, rest, b, ldb, c_rest, ldc, valid, accumulate);
    case 5: return Block<5, kVectors>(pairs, rest, b, ldb, c_rest, ldc, valid, accumulate);
    default: return;
  }
}

}  // namespace gemm_bf16_detail

// True when GemmBF16 runs on vdpbf16ps rather than the portable path.
constexpr bool kNativeBFloat16Dot =
#ifdef __AVX512BF16__
    true;
#else
    false;
#endif

// C[m, n] = A . B, or C += A . B when accumulate. A: m rows of b.k elements, each readable (and
// zero) up to b.k rounded up to even. B: packed by PackPairs. C: float32, rows ldc apart.
inline void GemmBF16(int64_t m, PairedRows a, const PackedPairs& b, float* c, int64_t ldc,
                     bool accumulate = false) {
  using gemm_bf16_detail::kLanes;
  const int64_t pairs = (b.k + 1) / 2;
  int64_t col = 0;
  for (; col + 4 * kLanes <= b.n; col += 4 * kLanes) {
    gemm_bf16_detail::Panel<4>(m, pairs, a, b.data.data() + 2 * col, b.row, c + col, ldc,
                               4 * kLanes, accumulate);
  }
  for (; col < b.n; col += kLanes) {  // the last panels, the very last maybe partial
    gemm_bf16_detail::Panel<1>(m, pairs, a, b.data.data() + 2 * col, b.row, c + col, ldc,
                               std::min<int64_t>(kLanes, b.n - col), accumulate);
  }
}

// A row-major A [m, b.k], rows lda apart.
inline void GemmBF16(int64_t m, const BFloat16* a, int64_t lda, const PackedPairs& b, float* c,
                     int64_t ldc, bool accumulate = false) {
  GemmBF16(m, PairedRows{a, lda, 2}, b, c, ldc, accumulate);
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_GEMM_BF16_H_
