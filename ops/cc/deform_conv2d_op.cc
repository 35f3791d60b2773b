// TensorFlow registration of EdvrDeformConv2D and its gradient: the fused
// deformable convolution with one convolution group (kernels/cpu/deform_conv2d).
// The attributes are those of EdvrDeformableOffsets; ksize must match the filters.
#include "kernels/cpu/deform_conv2d.h"
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

// y: [N, Ho, Wo, F], with as much known as the inputs tell.
tf::Status ForwardShape(InferenceContext* c) {
  DeformableAttrs a;
  TF_RETURN_IF_ERROR(ReadDeformableAttrs(c, &a));
  DimensionHandle batch, out_h, out_w;
  TF_RETURN_IF_ERROR(DeformableOutputGrid(c, a, &batch, &out_h, &out_w));
  ShapeHandle filters;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &filters));
  c->set_output(0, c->MakeShape({batch, out_h, out_w, c->Dim(filters, 3)}));
  return tf::Status();
}

REGISTER_OP("EdvrDeformConv2D")
    .Input("x: T")
    .Input("offsets: T")
    .Input("filters: T")
    .Output("y: T")
    .EDVR_DEFORMABLE_ATTRS.SetShapeFn(ForwardShape)
    .Doc(R"doc(
Modulated deformable convolution (DCNv2) with one convolution group, NHWC, no bias:
conv2d(EdvrDeformableOffsets(x, offsets), filters, strides=ksize, padding=VALID).
x: [N, H, W, C]. offsets: [N, Ho, Wo, 3*G*K]. filters: [kh, kw, C, F]. y: [N, Ho, Wo, F].
)doc");

REGISTER_OP("EdvrDeformConv2DGrad")
    .Input("grad: T")
    .Input("x: T")
    .Input("offsets: T")
    .Input("filters: T")
    .Output("grad_x: T")
    .Output("grad_offsets: T")
    .Output("grad_filters: T")
    .EDVR_DEFORMABLE_ATTRS.SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrDeformConv2D with respect to x, offsets and filters.");

tf::TensorShape OutputShape(const DeformableOffsetsGeometry& geo, int64_t features) {
  return tf::TensorShape({geo.batch, geo.out_height, geo.out_width, features});
}

template <typename T>
void ComputeForward(tf::OpKernelContext* context, const DeformableAttrs& attrs) {
  const tf::Tensor &x = context->input(0), &offsets = context->input(1);
  const tf::Tensor& filters = context->input(2);
  DeformableOffsetsGeometry geo;
  int64_t features = 0;
  OP_REQUIRES_OK(context, CheckDeformConv2DInputs(attrs, x.shape(), offsets.shape(),
                                                  filters.shape(), &geo, &features));
  tf::Tensor* y = nullptr;
  if (!AllocateOutput(context, OutputShape(geo, features), &y)) return;
  DeformConv2DForward(geo, features, Data<T>(x), Data<T>(offsets), Data<T>(filters),
                      MutableData<T>(y), TensorFlowParallelFor(context));
}

template <typename T>
void ComputeGradient(tf::OpKernelContext* context, const DeformableAttrs& attrs) {
  const tf::Tensor &grad = context->input(0), &x = context->input(1);
  const tf::Tensor &offsets = context->input(2), &filters = context->input(3);
  DeformableOffsetsGeometry geo;
  int64_t features = 0;
  OP_REQUIRES_OK(context, CheckDeformConv2DInputs(attrs, x.shape(), offsets.shape(),
                                                  filters.shape(), &geo, &features));
  tf::Tensor *grad_x = nullptr, *grad_offsets = nullptr, *grad_filters = nullptr;
  if (!AllocateGradients<T>(context, OutputShape(geo, features), &grad_x, &grad_offsets,
                            &grad_filters)) {
    return;
  }
  DeformConv2DBackward(geo, features, Data<T>(x), Data<T>(offsets), Data<T>(filters), Data<T>(grad),
                       MutableData<T>(grad_x), MutableData<T>(grad_offsets),
                       MutableData<T>(grad_filters), CpuThreads(context),
                       TensorFlowParallelFor(context));
}

EDVR_REGISTER_CPU_KERNELS("EdvrDeformConv2D", DeformableKernel, ComputeForward, ComputeGradient)

}  // namespace
}  // namespace edvr
