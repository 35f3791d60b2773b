// The output size of a sliding window along one axis (docs/ops.md): the one formula of the
// C++ layers (ops/cc, kernels/python). Python's twin is ops/_checks.out_size.
#ifndef EDVR_KERNELS_CPU_OUTPUT_SIZE_H_
#define EDVR_KERNELS_CPU_OUTPUT_SIZE_H_

#include <cstdint>

namespace edvr {

// Number of kernel positions along an axis of `size` elements with `pad` elements of padding
// in all (both sides): (size + pad - span) / stride + 1, span = dilation * (kernel - 1) + 1;
// 0 when the kernel does not fit (size + pad < span).
inline int64_t OutputSize(int64_t size, int64_t pad, int64_t kernel, int64_t dilation,
                          int64_t stride) {
  const int64_t span = dilation * (kernel - 1) + 1;
  return size + pad < span ? 0 : (size + pad - span) / stride + 1;
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_OUTPUT_SIZE_H_
