// What the ops' shape functions share: the output grid (N, Ho, Wo) of the deformable ops, and
// the shapes of every gradient op.
#ifndef EDVR_OPS_CC_SHAPE_FUNCTIONS_H_
#define EDVR_OPS_CC_SHAPE_FUNCTIONS_H_

#include <cstdint>

#include "ops/cc/deformable_attrs.h"
#include "ops/cc/op_util.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace edvr {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// The output grid of a deformable op: batch, Ho and Wo, with as much known as x (input 0) and
// offsets (input 1) tell; checks offsets' channels and x's against the attributes.
inline tf::Status DeformableOutputGrid(InferenceContext* c, const DeformableAttrs& a,
                                       DimensionHandle* batch, DimensionHandle* out_h,
                                       DimensionHandle* out_w) {
  using tf::errors::InvalidArgument;
  ShapeHandle x, offsets;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &offsets));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(offsets, 0), batch));
  DimensionHandle channels = c->Dim(x, 3);
  if (c->ValueKnown(channels) && c->Value(channels) % a.deformable_groups != 0) {
    return InvalidArgument("x channels (", c->Value(channels),
                           ") must be divisible by deformable_groups (", a.deformable_groups, ")");
  }
  DimensionHandle offset_channels;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(offsets, 3), 3 * a.deformable_groups * a.KernelPoints(),
                                  &offset_channels));
  auto out_dim = [&](int axis, int64_t out_size_of_known, DimensionHandle* out) -> tf::Status {
    DimensionHandle from_offsets = c->Dim(offsets, axis);
    DimensionHandle from_x =
        c->ValueKnown(c->Dim(x, axis)) ? c->MakeDim(out_size_of_known) : c->UnknownDim();
    if (c->ValueKnown(from_x) && c->Value(from_x) < 1) {
      return InvalidArgument("kernel is larger than the padded input along axis ", axis, " of x");
    }
    return c->Merge(from_x, from_offsets, out);
  };
  const int64_t h = c->ValueKnown(c->Dim(x, 1)) ? c->Value(c->Dim(x, 1)) : 0;
  const int64_t w = c->ValueKnown(c->Dim(x, 2)) ? c->Value(c->Dim(x, 2)) : 0;
  TF_RETURN_IF_ERROR(out_dim(1, a.OutHeight(h), out_h));
  return out_dim(2, a.OutWidth(w), out_w);
}

// Shape function of a gradient op (grad, a, b, ...) -> (grad_a, grad_b, ...).
inline tf::Status GradientShapes(InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(i + 1));
  return tf::Status();
}

}  // namespace edvr

#endif  // EDVR_OPS_CC_SHAPE_FUNCTIONS_H_
