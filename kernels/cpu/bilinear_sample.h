// Framework-free CPU kernels of bilinear_sample (warping) in NHWC. docs/ops.md.
//
//   x       [N, H, W, C]
//   coords  [N, P, 2]   (x, y) pixel positions, x first; P = product of the middle dims
//   y       [N, P, C]   zero-outside bilinear samples
// One image must hold fewer than 2^31 elements (H*W*C): lanes index it in 32 bits.
#ifndef EDVR_KERNELS_CPU_BILINEAR_SAMPLE_H_
#define EDVR_KERNELS_CPU_BILINEAR_SAMPLE_H_

#include <cstdint>

#include "bfloat16.h"
#include "parallel.h"

namespace edvr {

struct BilinearSampleGeometry {
  int64_t batch, in_height, in_width, channels;
  int64_t points;  // P
};

// y = bilinear_sample(x, coords). Work is split over points.
template <typename T>
void BilinearSampleForward(const BilinearSampleGeometry& geo, const T* x, const T* coords, T* y,
                           const ParallelFor& parallel_for);

// grad_x [N, H, W, C] and grad_coords [N, P, 2] of sum(grad_y * y). Work is
// split over (batch item, block of 16 channels); each unit owns its slice of
// grad_x, and the per-block partial coordinate gradients are summed afterwards
// in a fixed order, so the result is race-free and deterministic.
template <typename T>
void BilinearSampleBackward(const BilinearSampleGeometry& geo, const T* x, const T* coords,
                            const T* grad_y, T* grad_x, T* grad_coords,
                            const ParallelFor& parallel_for);

// T is float, double or BFloat16. bfloat16: located, weighted and summed in float32; the
// forward reads x and writes y in place, rounding each sample once; the backward runs in
// float32 on widened copies into float32 gradients rounded once at the end (InFloat32).
template <>
void BilinearSampleBackward<BFloat16>(const BilinearSampleGeometry& geo, const BFloat16* x,
                                      const BFloat16* coords, const BFloat16* grad_y,
                                      BFloat16* grad_x, BFloat16* grad_coords,
                                      const ParallelFor& parallel_for);

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_BILINEAR_SAMPLE_H_
