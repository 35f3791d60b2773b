// TensorFlow registration of EdvrDeformableOffsets and its gradient: schema and
// shape function, and CPU kernels that validate, allocate and dispatch to
// kernels/cpu/deformable_offsets. Named Edvr* so as not to clash with
// npu_bridge's DeformableOffsets.
#include "kernels/cpu/deformable_offsets.h"
#include "ops/cc/deformable_attrs.h"
#include "ops/cc/input_checks.h"
#include "ops/cc/op_util.h"
#include "ops/cc/shape_functions.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {
namespace {

// y: [N, Ho*kh, Wo*kw, C], with as much known as the inputs tell.
tf::Status ForwardShape(InferenceContext* c) {
  DeformableAttrs a;
  TF_RETURN_IF_ERROR(ReadDeformableAttrs(c, &a));
  DimensionHandle batch, out_h, out_w, rows, cols;
  TF_RETURN_IF_ERROR(DeformableOutputGrid(c, a, &batch, &out_h, &out_w));
  TF_RETURN_IF_ERROR(c->Multiply(out_h, a.kernel_h, &rows));
  TF_RETURN_IF_ERROR(c->Multiply(out_w, a.kernel_w, &cols));
  c->set_output(0, c->MakeShape({batch, rows, cols, c->Dim(c->input(0), 3)}));
  return tf::Status();
}

REGISTER_OP("EdvrDeformableOffsets")
    .Input("x: T")
    .Input("offsets: T")
    .Output("y: T")
    .EDVR_DEFORMABLE_ATTRS.SetShapeFn(ForwardShape)
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
    .EDVR_DEFORMABLE_ATTRS.SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrDeformableOffsets with respect to x and offsets.");

tf::TensorShape OutputShape(const DeformableOffsetsGeometry& geo) {
  return tf::TensorShape(
      {geo.batch, geo.out_height * geo.kernel_h, geo.out_width * geo.kernel_w, geo.channels});
}

template <typename T>
void ComputeForward(tf::OpKernelContext* context, const DeformableAttrs& attrs) {
  const tf::Tensor &x = context->input(0), &offsets = context->input(1);
  DeformableOffsetsGeometry geo;
  OP_REQUIRES_OK(context, CheckDeformableOffsetsInputs(attrs, x.shape(), offsets.shape(), &geo));
  tf::Tensor* y = nullptr;
  if (!AllocateOutput(context, OutputShape(geo), &y)) return;
  DeformableOffsetsForward(geo, Data<T>(x), Data<T>(offsets), MutableData<T>(y),
                           TensorFlowParallelFor(context));
}

template <typename T>
void ComputeGradient(tf::OpKernelContext* context, const DeformableAttrs& attrs) {
  const tf::Tensor &grad = context->input(0), &x = context->input(1);
  const tf::Tensor& offsets = context->input(2);
  DeformableOffsetsGeometry geo;
  OP_REQUIRES_OK(context, CheckDeformableOffsetsInputs(attrs, x.shape(), offsets.shape(), &geo));
  tf::Tensor *grad_x = nullptr, *grad_offsets = nullptr;
  if (!AllocateGradients<T>(context, OutputShape(geo), &grad_x, &grad_offsets)) return;
  DeformableOffsetsBackward(geo, Data<T>(x), Data<T>(offsets), Data<T>(grad),
                            MutableData<T>(grad_x), MutableData<T>(grad_offsets),
                            CpuThreads(context), TensorFlowParallelFor(context));
}

EDVR_REGISTER_CPU_KERNELS("EdvrDeformableOffsets", DeformableKernel, ComputeForward,
                          ComputeGradient)

}  // namespace
}  // namespace edvr
