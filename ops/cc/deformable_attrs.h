// The attributes of the deformable ops (EdvrDeformableOffsets, EdvrDeformConv2D and their
// gradients): their schema, their values read and checked, and the kernel class that holds
// them.
#ifndef EDVR_OPS_CC_DEFORMABLE_ATTRS_H_
#define EDVR_OPS_CC_DEFORMABLE_ATTRS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/output_size.h"
#include "ops/cc/op_util.h"
#include "tensorflow/core/framework/op.h"

namespace edvr {

// The attributes of the schema: one list for the forward and gradient ops. Their names are
// the op interface (CANN's TF adapter maps them to the TBE kernels' by name).
#define EDVR_DEFORMABLE_ATTRS                 \
  EDVR_DTYPE_ATTR.Attr("ksize: list(int)")    \
      .Attr("strides: list(int) = [1, 1]")    \
      .Attr("pads: list(int) = [0, 0, 0, 0]") \
      .Attr("dilations: list(int) = [1, 1]")  \
      .Attr("deformable_groups: int = 1")     \
      .Attr("modulated: bool = true")

// The attributes' values, checked.
struct DeformableAttrs {
  int64_t kernel_h, kernel_w, stride_h, stride_w;
  int64_t pad_top, pad_bottom, pad_left, pad_right;
  int64_t dilation_h, dilation_w, deformable_groups;
  bool modulated;

  int64_t KernelPoints() const { return kernel_h * kernel_w; }
  // Ho and Wo of an input of height h and width w; 0 when the kernel does not fit.
  int64_t OutHeight(int64_t h) const {
    return OutputSize(h, pad_top + pad_bottom, kernel_h, dilation_h, stride_h);
  }
  int64_t OutWidth(int64_t w) const {
    return OutputSize(w, pad_left + pad_right, kernel_w, dilation_w, stride_w);
  }
};

// Reads and checks the attributes; works for OpKernelConstruction and InferenceContext.
template <typename Context>
tf::Status ReadDeformableAttrs(Context* ctx, DeformableAttrs* a) {
  using ::tensorflow::errors::InvalidArgument;
  std::vector<int64_t> ksize, strides, pads, dilations;
  int64_t deformable_groups = 0;
  TF_RETURN_IF_ERROR(ctx->GetAttr("ksize", &ksize));
  TF_RETURN_IF_ERROR(ctx->GetAttr("strides", &strides));
  TF_RETURN_IF_ERROR(ctx->GetAttr("pads", &pads));
  TF_RETURN_IF_ERROR(ctx->GetAttr("dilations", &dilations));
  TF_RETURN_IF_ERROR(ctx->GetAttr("deformable_groups", &deformable_groups));
  TF_RETURN_IF_ERROR(ctx->GetAttr("modulated", &a->modulated));
  auto positive_pair = [](const std::vector<int64_t>& v) {
    return v.size() == 2 && v[0] > 0 && v[1] > 0;
  };
  if (!positive_pair(ksize)) {
    return InvalidArgument("ksize must be 2 positive integers (kh, kw), got ", JoinShape(ksize));
  }
  if (!positive_pair(strides)) {
    return InvalidArgument("strides must be 2 positive integers (sh, sw), got ",
                           JoinShape(strides));
  }
  if (!positive_pair(dilations)) {
    return InvalidArgument("dilations must be 2 positive integers (dh, dw), got ",
                           JoinShape(dilations));
  }
  if (pads.size() != 4 || *std::min_element(pads.begin(), pads.end()) < 0) {
    return InvalidArgument("pads must be 4 non-negative integers (top, bottom, left, right), got ",
                           JoinShape(pads));
  }
  if (deformable_groups < 1) {
    return InvalidArgument("deformable_groups must be >= 1, got ", deformable_groups);
  }
  a->kernel_h = ksize[0], a->kernel_w = ksize[1];
  a->stride_h = strides[0], a->stride_w = strides[1];
  a->pad_top = pads[0], a->pad_bottom = pads[1], a->pad_left = pads[2], a->pad_right = pads[3];
  a->dilation_h = dilations[0], a->dilation_w = dilations[1];
  a->deformable_groups = deformable_groups;
  return tf::Status();
}

// A CPU kernel of a deformable op whose work is the function Run, FunctionKernel's twin: its
// attributes are read and checked once, at construction, and passed to Run at every call.
template <void (*Run)(tf::OpKernelContext*, const DeformableAttrs&)>
class DeformableKernel : public tf::OpKernel {
 public:
  explicit DeformableKernel(tf::OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadDeformableAttrs(context, &attrs_));
  }
  void Compute(tf::OpKernelContext* context) override { Run(context, attrs_); }

 private:
  DeformableAttrs attrs_;
};

}  // namespace edvr

#endif  // EDVR_OPS_CC_DEFORMABLE_ATTRS_H_
