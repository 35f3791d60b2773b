// TensorFlow registration of EdvrDeformConv2D and its gradient: the fused
// deformable convolution with one convolution group (kernels/cpu/deform_conv2d).
// The attributes are those of EdvrDeformableOffsets; ksize must match the filters.
#include "kernels/cpu/deform_conv2d.h"
#include "ops/cc/deformable_attrs.h"
#include "ops/cc/op_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {
namespace {

namespace tf = ::tensorflow;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;
using deformable_attrs::Attrs;
using deformable_attrs::CheckInputs;
using deformable_attrs::DeformableOpKernel;
using deformable_attrs::OutputGrid;
using deformable_attrs::ReadAttrs;

// y: [N, Ho, Wo, F], with as much known as the inputs tell.
tf::Status ForwardShape(InferenceContext* c) {
  Attrs a;
  TF_RETURN_IF_ERROR(ReadAttrs(c, &a));
  DimensionHandle batch, out_h, out_w;
  TF_RETURN_IF_ERROR(OutputGrid(c, a, &batch, &out_h, &out_w));
  ShapeHandle filters;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &filters));
  c->set_output(0, c->MakeShape({batch, out_h, out_w, c->Dim(filters, 3)}));
  return tf::Status();
}

// Checks x and offsets (as CheckInputs does) and filters [kh, kw, C, F] against the
// attributes; fills the geometry and F.
tf::Status CheckConvInputs(const Attrs& a, const tf::TensorShape& x,
                           const tf::TensorShape& offsets, const tf::TensorShape& filters,
                           DeformableOffsetsGeometry* geo, int64_t* features) {
  TF_RETURN_IF_ERROR(CheckInputs(a, x, offsets, geo));
  if (filters.dims() != 4 || filters.dim_size(0) != a.kernel_h ||
      filters.dim_size(1) != a.kernel_w || filters.dim_size(2) != x.dim_size(3)) {
    return InvalidArgument("filters must have shape [kh, kw, C, F] = [", a.kernel_h, ", ",
                           a.kernel_w, ", ", x.dim_size(3), ", F] for x of shape ",
                           x.DebugString(), ", got ", filters.DebugString());
  }
  *features = filters.dim_size(3);
  return tf::Status();
}

REGISTER_OP("EdvrDeformConv2D")
    .Input("x: T")
    .Input("offsets: T")
    .Input("filters: T")
    .Output("y: T")
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .SetShapeFn(ForwardShape)
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
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrDeformConv2D with respect to x, offsets and filters.");

template <typename T>
class DeformConv2DOp : public DeformableOpKernel {
 public:
  using DeformableOpKernel::DeformableOpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& x = context->input(0);
    const tf::Tensor& offsets = context->input(1);
    const tf::Tensor& filters = context->input(2);
    DeformableOffsetsGeometry geo;
    int64_t features = 0;
    OP_REQUIRES_OK(context, CheckConvInputs(attrs_, x.shape(), offsets.shape(), filters.shape(),
                                            &geo, &features));
    tf::Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0,
                                tf::TensorShape({geo.batch, geo.out_height, geo.out_width,
                                                 features}),
                                &y));
    if (y->NumElements() == 0) return;
    DeformConv2DForward<typename KernelType<T>::type>(geo, features, Data<T>(x), Data<T>(offsets),
                           Data<T>(filters), MutableData<T>(y),
                           TensorFlowParallelFor(context));
  }
};

template <typename T>
class DeformConv2DGradOp : public DeformableOpKernel {
 public:
  using DeformableOpKernel::DeformableOpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& grad = context->input(0);
    const tf::Tensor& x = context->input(1);
    const tf::Tensor& offsets = context->input(2);
    const tf::Tensor& filters = context->input(3);
    DeformableOffsetsGeometry geo;
    int64_t features = 0;
    OP_REQUIRES_OK(context, CheckConvInputs(attrs_, x.shape(), offsets.shape(), filters.shape(),
                                            &geo, &features));
    const tf::TensorShape y_shape({geo.batch, geo.out_height, geo.out_width, features});
    tf::Tensor* grad_x = nullptr;
    tf::Tensor* grad_offsets = nullptr;
    tf::Tensor* grad_filters = nullptr;
    if (!AllocateGradients<T>(context, y_shape, &grad_x, &grad_offsets, &grad_filters)) return;
    DeformConv2DBackward<typename KernelType<T>::type>(geo, features, Data<T>(x), Data<T>(offsets),
                            Data<T>(filters), Data<T>(grad),
                            MutableData<T>(grad_x), MutableData<T>(grad_offsets),
                            MutableData<T>(grad_filters), CpuThreads(context),
                            TensorFlowParallelFor(context));
  }
};

#define EDVR_REGISTER_KERNELS(T)                                                         \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("EdvrDeformConv2D").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),            \
      DeformConv2DOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("EdvrDeformConv2DGrad").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),        \
      DeformConv2DGradOp<T>);

EDVR_REGISTER_KERNELS(float)
EDVR_REGISTER_KERNELS(double)
EDVR_REGISTER_KERNELS(tf::bfloat16)
#undef EDVR_REGISTER_KERNELS

}  // namespace
}  // namespace edvr
