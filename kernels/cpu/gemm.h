// A small register-blocked matrix product for the fused deformable convolution:
// C[m, n] (+)= sum_k A(m, k) * B[k, n], with B and C row-major and A addressed
// through a row and a column stride, so that A or its transpose can be used in
// place. Sized for the cache-resident tiles of deform_conv2d.cc (k and n up to a
// few hundred), not for large products.
#ifndef EDVR_KERNELS_CPU_GEMM_H_
#define EDVR_KERNELS_CPU_GEMM_H_

#include <cstdint>

#include "vec.h"

namespace edvr {

// A strided view of a matrix: element (r, c) at data[r * row + c * col].
template <typename T>
struct StridedMatrix {
  const T* data;
  int64_t row, col;
  T operator()(int64_t r, int64_t c) const { return data[r * row + c * col]; }
};

namespace gemm_detail {

// C[kRows, kVectors * width] (+)= A[kRows, k] * B[k, kVectors * width], the
// accumulators held in registers for the whole k loop.
template <int kRows, int kVectors, typename T>
inline void Block(int64_t k, StridedMatrix<T> a, const T* b, int64_t ldb, T* c, int64_t ldc,
                  bool accumulate) {
  using W = Vec<T, 64>;
  typename W::type acc[kRows][kVectors] = {};
  for (int64_t kk = 0; kk < k; ++kk) {
    typename W::type bv[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) bv[v] = W::Load(b + kk * ldb + v * W::kWidth);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const T s = a(r, kk);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] += s * bv[v];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVectors; ++v) {
      T* out = c + r * ldc + v * W::kWidth;
      W::Store(out, accumulate ? W::Load(out) + acc[r][v] : acc[r][v]);
    }
  }
}

// All rows of one column panel of kVectors vectors, six rows at a time.
template <int kVectors, typename T>
inline void Panel(int64_t m, int64_t k, StridedMatrix<T> a, const T* b, int64_t ldb, T* c,
                  int64_t ldc, bool accumulate) {
  constexpr int kRows = 6;
  int64_t r = 0;
  for (; r + kRows <= m; r += kRows) {
    Block<kRows, kVectors>(k, {a.data + r * a.row, a.row, a.col}, b, ldb, c + r * ldc, ldc,
                           accumulate);
  }
  const StridedMatrix<T> rest{a.data + r * a.row, a.row, a.col};
  T* c_rest = c + r * ldc;
  switch (m - r) {
    case 1: return Block<1, kVectors>(k, rest, b, ldb, c_rest, ldc, accumulate);
    case 2: return Block<2, kVectors>(k, rest, b, ldb, c_rest, ldc, accumulate);
    case 3: return Block<3, kVectors>(k, rest, b, ldb, c_rest, ldc, accumulate);
    case 4: return Block<4, kVectors>(k, rest, b, ldb, c_rest, ldc, accumulate);
    case 5: return Block<5, kVectors>(k, rest, b, ldb, c_rest, ldc, accumulate);
    default: return;
  }
}

}  // namespace gemm_detail

// C[m, n] = A * B, or C += A * B when accumulate. A: m x k (strided view),
// B: k x n with rows ldb apart, C: m x n with rows ldc apart.
template <typename T>
void Gemm(int64_t m, int64_t n, int64_t k, StridedMatrix<T> a, const T* b, int64_t ldb, T* c,
          int64_t ldc, bool accumulate) {
  constexpr int kWidth = Vec<T, 64>::kWidth;
  int64_t col = 0;
  for (; col + 4 * kWidth <= n; col += 4 * kWidth) {
    gemm_detail::Panel<4>(m, k, a, b + col, ldb, c + col, ldc, accumulate);
  }
  for (; col + kWidth <= n; col += kWidth) {
    gemm_detail::Panel<1>(m, k, a, b + col, ldb, c + col, ldc, accumulate);
  }
  for (int64_t i = 0; i < m && col < n; ++i) {  // the last n % width columns
    for (int64_t j = col; j < n; ++j) {
      T sum = 0;
      for (int64_t kk = 0; kk < k; ++kk) sum += a(i, kk) * b[kk * ldb + j];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
    }
  }
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_GEMM_H_
