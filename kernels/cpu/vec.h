// Short vectors through GCC/Clang vector extensions (no intrinsics). Vec<T> is
// 32 bytes (8 floats or 4 doubles): AVX where the target has it, SSE pairs
// otherwise. Vec<T, 64> is one AVX-512 register, or two AVX ones.
#ifndef EDVR_KERNELS_CPU_VEC_H_
#define EDVR_KERNELS_CPU_VEC_H_

#include <cstring>

namespace edvr {

template <typename T, int kBytes = 32>
struct Vec {
  typedef T type __attribute__((vector_size(kBytes)));
  static constexpr int kWidth = kBytes / sizeof(T);
  static type Load(const T* p) {
    type v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(T* p, type v) { std::memcpy(p, &v, sizeof(v)); }
  static T Sum(type v) {
    T s = 0;
    for (int i = 0; i < kWidth; ++i) s += v[i];
    return s;
  }
};

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_VEC_H_
