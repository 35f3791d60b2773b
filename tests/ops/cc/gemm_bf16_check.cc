// Checks GemmBF16 (kernels/cpu/gemm_bf16.h) against a double-precision product, for the path
// the compiler flags select (vdpbf16ps with __AVX512BF16__, else the portable one). Products
// of bfloat16 values are exact in float32, so a float32 sum of k of them (plus C's old value
// when accumulating) is within (k + 1) * 2^-24 * (sum |a * b| + |old|) of the exact value.
// Columns past n (ldc > n) must stay untouched. A is read row-major, and as the transpose of
// rows interleaved by InterleaveRowPairs (deform_conv2d's backward reads its columns so).
// Prints the path and exits 1 on the first violation. Built and run by test_gemm_bf16.py.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"

using edvr::BFloat16;

static bool Check(int64_t m, int64_t n, int64_t k, bool interleaved, bool accumulate,
                  std::mt19937* rng) {
  std::normal_distribution<float> normal;
  const int64_t lda = k + k % 2 + 3;  // rows readable and zero up to even k, then a gap
  std::vector<BFloat16> a(m * lda, BFloat16{0}), b(k * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t kk = 0; kk < k; ++kk) a[i * lda + kk] = edvr::ToBFloat16(normal(*rng));
  }
  // A^T [k, m] (m + 1 wide: A is read from column 1 on) interleaved by pairs of its rows.
  std::vector<BFloat16> transposed(k * (m + 1)), pairs((k + 1) / 2 * 2 * (m + 1));
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t i = 0; i < m; ++i) transposed[kk * (m + 1) + 1 + i] = a[i * lda + kk];
  }
  edvr::InterleaveRowPairs(transposed.data(), k, m + 1, pairs.data());
  const edvr::PairedRows a_rows = interleaved ? edvr::PairedRows{pairs.data() + 2, 2, 2 * (m + 1)}
                                              : edvr::PairedRows{a.data(), lda, 2};
  for (auto& v : b) v = edvr::ToBFloat16(normal(*rng));
  const edvr::PackedPairs packed =
      edvr::PackPairs(k, n, [&](int64_t kk, int64_t j) { return b[kk * n + j]; });
  const int64_t ldc = n + 5;
  const float poison = -12345.0f;
  std::vector<float> c(m * ldc, poison), old(m * ldc, 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; accumulate && j < n; ++j) c[i * ldc + j] = old[i * ldc + j] = normal(*rng);
  }
  edvr::GemmBF16(m, a_rows, packed, c.data(), ldc, accumulate);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = c[i * ldc + j];
      if (j >= n) {
        if (got != poison) {
          std::printf("m=%ld n=%ld k=%ld interleaved=%d accumulate=%d: column %ld past n was "
                      "written\n", long(m), long(n), long(k), interleaved, accumulate, long(j));
          return false;
        }
        continue;
      }
      double exact = old[i * ldc + j], magnitude = std::fabs(exact);
      for (int64_t kk = 0; kk < k; ++kk) {
        const double p = double(edvr::ToFloat(a[i * lda + kk])) * edvr::ToFloat(b[kk * n + j]);
        exact += p;
        magnitude += std::fabs(p);
      }
      const double bound = (k + 1) * std::ldexp(1.0, -24) * magnitude;
      if (!(std::fabs(got - exact) <= bound)) {
        std::printf("m=%ld n=%ld k=%ld interleaved=%d accumulate=%d: C[%ld, %ld] = %.9g, exact "
                    "%.9g, bound %.3g\n", long(m), long(n), long(k), interleaved, accumulate,
                    long(i), long(j), got, exact, bound);
        return false;
      }
    }
  }
  return true;
}

int main() {
  std::mt19937 rng(7);
  const int64_t sizes[][3] = {{1, 1, 1},   {6, 16, 2},   {5, 17, 27},  {7, 64, 576},
                              {13, 70, 3}, {6, 130, 288}, {2, 200, 1}, {12, 48, 433}};
  for (const auto& s : sizes) {
    for (int mode = 0; mode < 4; ++mode) {
      if (!Check(s[0], s[1], s[2], mode & 1, mode & 2, &rng)) return 1;
    }
  }
  std::printf("%s ok\n", edvr::kNativeBFloat16Dot ? "vdpbf16ps" : "portable");
  return 0;
}
