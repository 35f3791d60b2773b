// What the deformable ops' registrations share: their attributes, read and
// checked (also by a kernel base class); the check of x and offsets against them;
// and the output grid (N, Ho, Wo) of the shape functions.
#ifndef EDVR_OPS_CC_DEFORMABLE_ATTRS_H_
#define EDVR_OPS_CC_DEFORMABLE_ATTRS_H_

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/deformable_offsets.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {
namespace deformable_attrs {

namespace tf = ::tensorflow;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// The attributes shared by the forward and gradient ops, checked.
struct Attrs {
  int64_t kernel_h, kernel_w, stride_h, stride_w;
  int64_t pad_top, pad_bottom, pad_left, pad_right;
  int64_t dilation_h, dilation_w, groups;
  bool modulated;

  int64_t KernelPoints() const { return kernel_h * kernel_w; }
  // Output size along one axis, or a negative number when the kernel does not fit.
  static int64_t OutSize(int64_t in, int64_t pad, int64_t kernel, int64_t dilation, int64_t stride) {
    const int64_t span = dilation * (kernel - 1) + 1;
    return in + pad < span ? -1 : (in + pad - span) / stride + 1;
  }
  int64_t OutHeight(int64_t h) const {
    return OutSize(h, pad_top + pad_bottom, kernel_h, dilation_h, stride_h);
  }
  int64_t OutWidth(int64_t w) const {
    return OutSize(w, pad_left + pad_right, kernel_w, dilation_w, stride_w);
  }
};

inline std::string Join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Reads and checks the attributes; works for OpKernelConstruction and InferenceContext.
template <typename Context>
tf::Status ReadAttrs(Context* ctx, Attrs* a) {
  std::vector<int64_t> ksize, strides, pads, dilations;
  int64_t groups = 0;
  TF_RETURN_IF_ERROR(ctx->GetAttr("ksize", &ksize));
  TF_RETURN_IF_ERROR(ctx->GetAttr("strides", &strides));
  TF_RETURN_IF_ERROR(ctx->GetAttr("pads", &pads));
  TF_RETURN_IF_ERROR(ctx->GetAttr("dilations", &dilations));
  TF_RETURN_IF_ERROR(ctx->GetAttr("deformable_groups", &groups));
  TF_RETURN_IF_ERROR(ctx->GetAttr("modulated", &a->modulated));
  auto positive_pair = [](const std::vector<int64_t>& v) {
    return v.size() == 2 && v[0] > 0 && v[1] > 0;
  };
  if (!positive_pair(ksize)) {
    return InvalidArgument("ksize must be 2 positive integers (kh, kw), got ", Join(ksize));
  }
  if (!positive_pair(strides)) {
    return InvalidArgument("strides must be 2 positive integers (sh, sw), got ", Join(strides));
  }
  if (!positive_pair(dilations)) {
    return InvalidArgument("dilations must be 2 positive integers (dh, dw), got ",
                           Join(dilations));
  }
  if (pads.size() != 4 || *std::min_element(pads.begin(), pads.end()) < 0) {
    return InvalidArgument(
        "pads must be 4 non-negative integers (top, bottom, left, right), got ", Join(pads));
  }
  if (groups < 1) return InvalidArgument("deformable_groups must be >= 1, got ", groups);
  a->kernel_h = ksize[0], a->kernel_w = ksize[1];
  a->stride_h = strides[0], a->stride_w = strides[1];
  a->pad_top = pads[0], a->pad_bottom = pads[1], a->pad_left = pads[2], a->pad_right = pads[3];
  a->dilation_h = dilations[0], a->dilation_w = dilations[1];
  a->groups = groups;
  return tf::Status();
}

// Checks x and offsets against each other and the attributes; fills the geometry.
inline tf::Status CheckInputs(const Attrs& a, const tf::TensorShape& x, const tf::TensorShape& offsets,
                       DeformableOffsetsGeometry* geo) {
  if (x.dims() != 4) {
    return InvalidArgument("x must be rank 4 [N, H, W, C], got shape ", x.DebugString());
  }
  if (offsets.dims() != 4) {
    return InvalidArgument("offsets must be rank 4 [N, Ho, Wo, 3*G*K], got shape ",
                           offsets.DebugString());
  }
  const int64_t n = x.dim_size(0), h = x.dim_size(1), w = x.dim_size(2), c = x.dim_size(3);
  if (c % a.groups != 0) {
    return InvalidArgument("x channels (", c, ") must be divisible by deformable_groups (",
                           a.groups, ")");
  }
  if (h * w * c >= (int64_t(1) << 31)) {  // the kernels index one image with 32-bit lanes
    return InvalidArgument("x is too large: H*W*C = ", h * w * c, " for shape ", x.DebugString(),
                           ", must be < 2^31 per batch item");
  }
  const int64_t ho = a.OutHeight(h), wo = a.OutWidth(w);
  if (ho < 1 || wo < 1) {
    return InvalidArgument("kernel (", a.kernel_h, "x", a.kernel_w, " with dilation ",
                           a.dilation_h, "x", a.dilation_w,
                           ") is larger than the padded input of x (", h + a.pad_top + a.pad_bottom,
                           "x", w + a.pad_left + a.pad_right, ")");
  }
  const std::vector<int64_t> expected = {n, ho, wo, 3 * a.groups * a.KernelPoints()};
  const std::vector<int64_t> got = {offsets.dim_size(0), offsets.dim_size(1), offsets.dim_size(2),
                                    offsets.dim_size(3)};
  if (got != expected) {
    return InvalidArgument("offsets must have shape [N, Ho, Wo, 3*G*K] = ", Join(expected),
                           " for x of shape ", x.DebugString(), ", got ", offsets.DebugString());
  }
  *geo = DeformableOffsetsGeometry{n,        h,          w,          c,          ho,
                                   wo,       a.kernel_h, a.kernel_w, a.stride_h, a.stride_w,
                                   a.pad_top, a.pad_left, a.dilation_h, a.dilation_w, a.groups,
                                   a.modulated};
  return tf::Status();
}

// The output grid of the shape functions: batch, Ho and Wo, with as much known
// as x and offsets tell; checks offsets' channels and x's against the attributes.
inline tf::Status OutputGrid(InferenceContext* c, const Attrs& a, DimensionHandle* batch,
                             DimensionHandle* out_h, DimensionHandle* out_w) {
  ShapeHandle x, offsets;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &offsets));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(offsets, 0), batch));
  DimensionHandle channels = c->Dim(x, 3);
  if (c->ValueKnown(channels) && c->Value(channels) % a.groups != 0) {
    return InvalidArgument("x channels (", c->Value(channels),
                           ") must be divisible by deformable_groups (", a.groups, ")");
  }
  DimensionHandle offset_channels;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(offsets, 3), 3 * a.groups * a.KernelPoints(),
                                  &offset_channels));
  auto out_dim = [&](int axis, int64_t out_size_of_known, DimensionHandle* out) -> tf::Status {
    DimensionHandle from_offsets = c->Dim(offsets, axis);
    DimensionHandle from_x = c->ValueKnown(c->Dim(x, axis))
                                 ? c->MakeDim(out_size_of_known)
                                 : c->UnknownDim();
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

// An OpKernel whose attributes are read and checked once, at construction.
class DeformableOpKernel : public tf::OpKernel {
 public:
  explicit DeformableOpKernel(tf::OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadAttrs(context, &attrs_));
  }

 protected:
  Attrs attrs_;
};

#define EDVR_DEFORMABLE_OFFSETS_ATTRS                   \
  Attr("T: {float, double, bfloat16}")                  \
      .Attr("ksize: list(int)")                         \
      .Attr("strides: list(int) = [1, 1]")              \
      .Attr("pads: list(int) = [0, 0, 0, 0]")           \
      .Attr("dilations: list(int) = [1, 1]")            \
      .Attr("deformable_groups: int = 1")               \
      .Attr("modulated: bool = true")

}  // namespace deformable_attrs
}  // namespace edvr

#endif  // EDVR_OPS_CC_DEFORMABLE_ATTRS_H_
