// TensorFlow registration of EdvrDeformableOffsets and its gradient: schema and
// shape function, and CPU kernels that validate, allocate and dispatch to
// kernels/cpu/deformable_offsets. Named Edvr* so as not to clash with
// npu_bridge's DeformableOffsets.
#include "kernels/cpu/deformable_offsets.h"
#include "ops/cc/deformable_attrs.h"
#include "ops/cc/op_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {
namespace {

namespace tf = ::tensorflow;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using deformable_attrs::Attrs;
using deformable_attrs::CheckInputs;
using deformable_attrs::DeformableOpKernel;
using deformable_attrs::OutputGrid;
using deformable_attrs::ReadAttrs;

// y: [N, Ho*kh, Wo*kw, C], with as much known as the inputs tell.
tf::Status ForwardShape(InferenceContext* c) {
  Attrs a;
  TF_RETURN_IF_ERROR(ReadAttrs(c, &a));
  DimensionHandle batch, out_h, out_w, rows, cols;
  TF_RETURN_IF_ERROR(OutputGrid(c, a, &batch, &out_h, &out_w));
  TF_RETURN_IF_ERROR(c->Multiply(out_h, a.kernel_h, &rows));
  TF_RETURN_IF_ERROR(c->Multiply(out_w, a.kernel_w, &cols));
  c->set_output(0, c->MakeShape({batch, rows, cols, c->Dim(c->input(0), 3)}));
  return tf::Status();
}

REGISTER_OP("EdvrDeformableOffsets")
    .Input("x: T")
    .Input("offsets: T")
    .Output("y: T")
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Sampling half of a modulated deformable convolution (DCNv2), NHWC.
x: [N, H, W, C]. offsets: [N, Ho, Wo, 3*G*K] (dx block, dy block, mask block).
y: [N, Ho*kh, Wo*kw, C], zero-outside bilinear samples times the mask.
)doc");

REGISTER_OP("EdvrDeformableOffsetsGrad")
    .Input("grad: T")
    .Input("x: T")
    .Input("offsets: T")
    .Output("grad_x: T")
    .Output("grad_offsets: T")
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrDeformableOffsets with respect to x and offsets.");

template <typename T>
class DeformableOffsetsOp : public DeformableOpKernel {
 public:
  using DeformableOpKernel::DeformableOpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& x = context->input(0);
    const tf::Tensor& offsets = context->input(1);
    DeformableOffsetsGeometry geo;
    OP_REQUIRES_OK(context, CheckInputs(attrs_, x.shape(), offsets.shape(), &geo));
    tf::Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0,
                                tf::TensorShape({geo.batch, geo.out_height * geo.kernel_h,
                                                 geo.out_width * geo.kernel_w, geo.channels}),
                                &y));
    if (y->NumElements() == 0) return;
    DeformableOffsetsForward<typename KernelType<T>::type>(geo, Data<T>(x), Data<T>(offsets),
                                MutableData<T>(y), TensorFlowParallelFor(context));
  }
};

template <typename T>
class DeformableOffsetsGradOp : public DeformableOpKernel {
 public:
  using DeformableOpKernel::DeformableOpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& grad = context->input(0);
    const tf::Tensor& x = context->input(1);
    const tf::Tensor& offsets = context->input(2);
    DeformableOffsetsGeometry geo;
    OP_REQUIRES_OK(context, CheckInputs(attrs_, x.shape(), offsets.shape(), &geo));
    const tf::TensorShape y_shape({geo.batch, geo.out_height * geo.kernel_h,
                                   geo.out_width * geo.kernel_w, geo.channels});
    tf::Tensor* grad_x = nullptr;
    tf::Tensor* grad_offsets = nullptr;
    if (!AllocateGradients<T>(context, y_shape, &grad_x, &grad_offsets)) return;
    DeformableOffsetsBackward<typename KernelType<T>::type>(geo, Data<T>(x), Data<T>(offsets),
                                 Data<T>(grad), MutableData<T>(grad_x),
                                 MutableData<T>(grad_offsets), CpuThreads(context),
                                 TensorFlowParallelFor(context));
  }
};

#define EDVR_REGISTER_KERNELS(T)                                                    \
  REGISTER_KERNEL_BUILDER(                                                          \
      Name("EdvrDeformableOffsets").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),  \
      DeformableOffsetsOp<T>);                                                      \
  REGISTER_KERNEL_BUILDER(                                                          \
      Name("EdvrDeformableOffsetsGrad").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"), \
      DeformableOffsetsGradOp<T>);

EDVR_REGISTER_KERNELS(float)
EDVR_REGISTER_KERNELS(double)
EDVR_REGISTER_KERNELS(tf::bfloat16)
#undef EDVR_REGISTER_KERNELS

}  // namespace
}  // namespace edvr
