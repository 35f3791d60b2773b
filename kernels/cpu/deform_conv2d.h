// Framework-free CPU kernels of a modulated deformable convolution (DCNv2) with
// one convolution group, fusing the sampling of deformable_offsets with the
// matrix product of the convolution so that the columns never leave the cache.
//
//   x        [N, H, W, C]            C % G == 0
//   offsets  [N, Ho, Wo, 3 * G * K]  as for deformable_offsets
//   filters  [kh, kw, C, F]          read as a [K*C, F] matrix
//   y        [N, Ho, Wo, F]          y[p] = columns[p] . filters, columns[p] the
//                                    pixel's K*C deformable samples (times the mask)
#ifndef EDVR_KERNELS_CPU_DEFORM_CONV2D_H_
#define EDVR_KERNELS_CPU_DEFORM_CONV2D_H_

#include <cstdint>

#include "bfloat16.h"
#include "deformable_offsets.h"
#include "parallel.h"

namespace edvr {

// y = deform_conv2d(x, offsets, filters) without bias. Work is split over tiles
// of output pixels.
template <typename T>
void DeformConv2DForward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                         const T* offsets, const T* filters, T* y, const ParallelFor& parallel_for);

// grad_x, grad_offsets and grad_filters of sum(grad_y * y). grad_x is partitioned
// as in DeformableOffsetsBackward; each work range sums its own grad_filters, and
// the ranges' sums are added in a fixed order at the end.
template <typename T>
void DeformConv2DBackward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                          const T* offsets, const T* filters, const T* grad_y, T* grad_x,
                          T* grad_offsets, T* grad_filters, int64_t threads,
                          const ParallelFor& parallel_for);

// T is float, double or BFloat16. bfloat16 tensors are read and written in place: the columns
// are sampled (positions, weights and sums in float32) into bfloat16, the matrix products take
// bfloat16 operands with float32 sums (vdpbf16ps where the build targets AVX512_BF16,
// gemm_bf16.h), and each result is rounded once: y, grad_offsets as a pixel's are done, and
// grad_x and grad_filters (summed in float32) at the end.

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_DEFORM_CONV2D_H_
