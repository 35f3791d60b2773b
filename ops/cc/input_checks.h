// The run-time checks of each op's input shapes, one function per op (forward and gradient
// alike): they say what they got and what they expected, and fill the kernels' geometry.
// Their Python counterparts, for static shapes, are ops/_checks.py's.
#ifndef EDVR_OPS_CC_INPUT_CHECKS_H_
#define EDVR_OPS_CC_INPUT_CHECKS_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/bilinear_sample.h"
#include "kernels/cpu/deformable_offsets.h"
#include "ops/cc/deformable_attrs.h"
#include "ops/cc/op_util.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {

// Checks x [N, H, W, C] and offsets [N, Ho, Wo, 3*G*K] against each other and the
// attributes.
inline tf::Status CheckDeformableOffsetsInputs(const DeformableAttrs& a, const tf::TensorShape& x,
                                               const tf::TensorShape& offsets,
                                               DeformableOffsetsGeometry* geo) {
  using tf::errors::InvalidArgument;
  if (x.dims() != 4) {
    return InvalidArgument("x must be rank 4 [N, H, W, C], got shape ", x.DebugString());
  }
  if (offsets.dims() != 4) {
    return InvalidArgument("offsets must be rank 4 [N, Ho, Wo, 3*G*K], got shape ",
                           offsets.DebugString());
  }
  const int64_t n = x.dim_size(0), h = x.dim_size(1), w = x.dim_size(2), c = x.dim_size(3);
  if (c % a.deformable_groups != 0) {
    return InvalidArgument("x channels (", c, ") must be divisible by deformable_groups (",
                           a.deformable_groups, ")");
  }
  if (h * w * c >= (int64_t(1) << 31)) {  // the kernels index one image with 32-bit lanes
    return InvalidArgument("x is too large: H*W*C = ", h * w * c, " for shape ", x.DebugString(),
                           ", must be < 2^31 per batch item");
  }
  const int64_t ho = a.OutHeight(h), wo = a.OutWidth(w);
  if (ho < 1 || wo < 1) {
    return InvalidArgument("kernel (", a.kernel_h, "x", a.kernel_w, " with dilation ", a.dilation_h,
                           "x", a.dilation_w, ") is larger than the padded input of x (",
                           h + a.pad_top + a.pad_bottom, "x", w + a.pad_left + a.pad_right, ")");
  }
  const std::vector<int64_t> expected = {n, ho, wo, 3 * a.deformable_groups * a.KernelPoints()};
  const std::vector<int64_t> got = {offsets.dim_size(0), offsets.dim_size(1), offsets.dim_size(2),
                                    offsets.dim_size(3)};
  if (got != expected) {
    return InvalidArgument("offsets must have shape [N, Ho, Wo, 3*G*K] = ", JoinShape(expected),
                           " for x of shape ", x.DebugString(), ", got ", offsets.DebugString());
  }
  *geo = DeformableOffsetsGeometry{n,
                                   h,
                                   w,
                                   c,
                                   ho,
                                   wo,
                                   a.kernel_h,
                                   a.kernel_w,
                                   a.stride_h,
                                   a.stride_w,
                                   a.pad_top,
                                   a.pad_left,
                                   a.dilation_h,
                                   a.dilation_w,
                                   a.deformable_groups,
                                   a.modulated};
  return tf::Status();
}

// Checks x and offsets (as CheckDeformableOffsetsInputs does) and filters [kh, kw, C, F]
// against the attributes; fills F too.
inline tf::Status CheckDeformConv2DInputs(const DeformableAttrs& a, const tf::TensorShape& x,
                                          const tf::TensorShape& offsets,
                                          const tf::TensorShape& filters,
                                          DeformableOffsetsGeometry* geo, int64_t* features) {
  TF_RETURN_IF_ERROR(CheckDeformableOffsetsInputs(a, x, offsets, geo));
  if (filters.dims() != 4 || filters.dim_size(0) != a.kernel_h ||
      filters.dim_size(1) != a.kernel_w || filters.dim_size(2) != x.dim_size(3)) {
    return tf::errors::InvalidArgument(
        "filters must have shape [kh, kw, C, F] = [", a.kernel_h, ", ", a.kernel_w, ", ",
        x.dim_size(3), ", F] for x of shape ", x.DebugString(), ", got ", filters.DebugString());
  }
  *features = filters.dim_size(3);
  return tf::Status();
}

// Checks x [N, H, W, C] and coords [N, ..., 2].
inline tf::Status CheckBilinearSampleInputs(const tf::TensorShape& x, const tf::TensorShape& coords,
                                            BilinearSampleGeometry* geo) {
  using tf::errors::InvalidArgument;
  if (x.dims() != 4) {
    return InvalidArgument("x must be rank 4 [N, H, W, C], got shape ", x.DebugString());
  }
  if (coords.dims() < 2 || coords.dim_size(coords.dims() - 1) != 2) {
    return InvalidArgument("coords must have shape [N, ..., 2] holding (x, y), got shape ",
                           coords.DebugString());
  }
  if (coords.dim_size(0) != x.dim_size(0)) {
    return InvalidArgument("coords batch (", coords.dim_size(0), ") must equal x batch (",
                           x.dim_size(0), ")");
  }
  if (x.dim_size(1) * x.dim_size(2) * x.dim_size(3) >= (int64_t(1) << 31)) {
    return InvalidArgument("x is too large: H*W*C must be < 2^31 per batch item, got shape ",
                           x.DebugString());
  }
  int64_t points = 1;
  for (int d = 1; d < coords.dims() - 1; ++d) points *= coords.dim_size(d);
  *geo = BilinearSampleGeometry{x.dim_size(0), x.dim_size(1), x.dim_size(2), x.dim_size(3), points};
  return tf::Status();
}

}  // namespace edvr

#endif  // EDVR_OPS_CC_INPUT_CHECKS_H_
