// TensorFlow registration of EdvrBilinearSample and its gradient: schema and
// shape function, and CPU kernels that validate, allocate and dispatch to
// kernels/cpu/bilinear_sample.
#include "kernels/cpu/bilinear_sample.h"
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

// Checks x [N, H, W, C] and coords [N, ..., 2]; fills the geometry.
tf::Status CheckInputs(const tf::TensorShape& x, const tf::TensorShape& coords,
                       BilinearSampleGeometry* geo) {
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
  *geo = BilinearSampleGeometry{x.dim_size(0), x.dim_size(1), x.dim_size(2), x.dim_size(3),
                                points};
  return tf::Status();
}

// y: coords' shape with the last dimension replaced by C.
tf::Status ForwardShape(InferenceContext* c) {
  ShapeHandle x, coords, last, prefix, out;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 2, &coords));
  DimensionHandle two, batch;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(coords, -1), 2, &two));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(coords, 0), &batch));
  TF_RETURN_IF_ERROR(c->Subshape(coords, 1, -1, &prefix));
  TF_RETURN_IF_ERROR(c->Concatenate(c->MakeShape({batch}), prefix, &out));
  TF_RETURN_IF_ERROR(c->Concatenate(out, c->MakeShape({c->Dim(x, 3)}), &out));
  c->set_output(0, out);
  return tf::Status();
}

REGISTER_OP("EdvrBilinearSample")
    .Input("x: T")
    .Input("coords: T")
    .Output("y: T")
    .Attr("T: {float, double, bfloat16}")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Zero-outside bilinear sampling (warping), NHWC.
x: [N, H, W, C]. coords: [N, ..., 2] holding (x, y) pixel positions. y: [N, ..., C].
)doc");

REGISTER_OP("EdvrBilinearSampleGrad")
    .Input("grad: T")
    .Input("x: T")
    .Input("coords: T")
    .Output("grad_x: T")
    .Output("grad_coords: T")
    .Attr("T: {float, double, bfloat16}")
    .SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrBilinearSample with respect to x and coords.");

tf::TensorShape OutputShape(const tf::TensorShape& coords, int64_t channels) {
  tf::TensorShape y = coords;
  y.set_dim(y.dims() - 1, channels);
  return y;
}

template <typename T>
class BilinearSampleOp : public tf::OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& x = context->input(0);
    const tf::Tensor& coords = context->input(1);
    BilinearSampleGeometry geo;
    OP_REQUIRES_OK(context, CheckInputs(x.shape(), coords.shape(), &geo));
    tf::Tensor* y = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, OutputShape(coords.shape(), geo.channels), &y));
    if (y->NumElements() == 0) return;
    BilinearSampleForward<typename KernelType<T>::type>(geo, Data<T>(x), Data<T>(coords),
                             MutableData<T>(y), TensorFlowParallelFor(context));
  }
};

template <typename T>
class BilinearSampleGradOp : public tf::OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(tf::OpKernelContext* context) override {
    const tf::Tensor& grad = context->input(0);
    const tf::Tensor& x = context->input(1);
    const tf::Tensor& coords = context->input(2);
    BilinearSampleGeometry geo;
    OP_REQUIRES_OK(context, CheckInputs(x.shape(), coords.shape(), &geo));
    const tf::TensorShape y_shape = OutputShape(coords.shape(), geo.channels);
    tf::Tensor* grad_x = nullptr;
    tf::Tensor* grad_coords = nullptr;
    if (!AllocateGradients<T>(context, y_shape, &grad_x, &grad_coords)) return;
    BilinearSampleBackward<typename KernelType<T>::type>(geo, Data<T>(x), Data<T>(coords),
                              Data<T>(grad), MutableData<T>(grad_x),
                              MutableData<T>(grad_coords), TensorFlowParallelFor(context));
  }
};

#define EDVR_REGISTER_KERNELS(T)                                                         \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("EdvrBilinearSample").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),          \
      BilinearSampleOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("EdvrBilinearSampleGrad").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),      \
      BilinearSampleGradOp<T>);

EDVR_REGISTER_KERNELS(float)
EDVR_REGISTER_KERNELS(double)
EDVR_REGISTER_KERNELS(tf::bfloat16)
#undef EDVR_REGISTER_KERNELS

}  // namespace
}  // namespace edvr
