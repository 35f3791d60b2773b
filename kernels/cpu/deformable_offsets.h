// Framework-free CPU kernels of deformable_offsets, the sampling half of a
// modulated deformable convolution (DCNv2), in NHWC. Semantics: docs/ops.md.
//
//   x        [N, H, W, C]            C % G == 0, Cg = C / G
//   offsets  [N, Ho, Wo, 3 * G * K]  dx block, dy block, mask block; channel g*K + k
//   y        [N, Ho*kh, Wo*kw, C]    y[n, ho*kh+i, wo*kw+j, g*Cg+c] = m * bilinear(...)
// One image must hold fewer than 2^31 elements (H*W*C): lanes index it in 32 bits.
#ifndef EDVR_KERNELS_CPU_DEFORMABLE_OFFSETS_H_
#define EDVR_KERNELS_CPU_DEFORMABLE_OFFSETS_H_

#include <cstdint>

#include "bfloat16.h"
#include "parallel.h"

namespace edvr {

struct DeformableOffsetsGeometry {
  int64_t batch, in_height, in_width, channels;
  int64_t out_height, out_width;  // Ho, Wo
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;
  int64_t dilation_h, dilation_w;
  int64_t deformable_groups;  // G
  bool modulated;
};

// y = deformable_offsets(x, offsets). Work is split over output rows (n, ho).
template <typename T>
void DeformableOffsetsForward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                              T* y, const ParallelFor& parallel_for);

// grad_x [N, H, W, C] and grad_offsets [N, Ho, Wo, 3GK] of sum(grad_y * y).
// grad_x is a scatter; it is made race-free by partitioning: each work unit is
// a batch item (when there are at least `threads` of them) or a batch item and a
// block of whole deformable groups (at least a cache line of channels), and owns
// that part of grad_x and of grad_offsets.
template <typename T>
void DeformableOffsetsBackward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                               const T* grad_y, T* grad_x, T* grad_offsets, int64_t threads,
                               const ParallelFor& parallel_for);

// T is float, double or BFloat16. bfloat16: positions, weights and sums in float32; the
// forward reads x and writes y in place, rounding each sample once; the backward runs in
// float32 on widened copies into float32 gradients rounded once at the end (InFloat32).
template <>
void DeformableOffsetsBackward<BFloat16>(const DeformableOffsetsGeometry& geo, const BFloat16* x,
                                         const BFloat16* offsets, const BFloat16* grad_y,
                                         BFloat16* grad_x, BFloat16* grad_offsets, int64_t threads,
                                         const ParallelFor& parallel_for);

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_DEFORMABLE_OFFSETS_H_
