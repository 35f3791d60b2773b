// TensorFlow registration of EdvrBilinearSample and its gradient: schema and
// shape function, and CPU kernels that validate, allocate and dispatch to
// kernels/cpu/bilinear_sample.
#include "kernels/cpu/bilinear_sample.h"
#include "ops/cc/input_checks.h"
#include "ops/cc/op_util.h"
#include "ops/cc/shape_functions.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace edvr {
namespace {

// y: coords' shape with the last dimension replaced by C.
tf::Status ForwardShape(InferenceContext* c) {
  ShapeHandle x, coords, prefix, out;
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
    .EDVR_DTYPE_ATTR.SetShapeFn(ForwardShape)
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
    .EDVR_DTYPE_ATTR.SetShapeFn(GradientShapes)
    .Doc("Gradients of EdvrBilinearSample with respect to x and coords.");

tf::TensorShape OutputShape(const tf::TensorShape& coords, int64_t channels) {
  tf::TensorShape y = coords;
  y.set_dim(y.dims() - 1, channels);
  return y;
}

template <typename T>
void ComputeForward(tf::OpKernelContext* context) {
  const tf::Tensor &x = context->input(0), &coords = context->input(1);
  BilinearSampleGeometry geo;
  OP_REQUIRES_OK(context, CheckBilinearSampleInputs(x.shape(), coords.shape(), &geo));
  tf::Tensor* y = nullptr;
  if (!AllocateOutput(context, OutputShape(coords.shape(), geo.channels), &y)) return;
  BilinearSampleForward(geo, Data<T>(x), Data<T>(coords), MutableData<T>(y),
                        TensorFlowParallelFor(context));
}

template <typename T>
void ComputeGradient(tf::OpKernelContext* context) {
  const tf::Tensor &grad = context->input(0), &x = context->input(1);
  const tf::Tensor& coords = context->input(2);
  BilinearSampleGeometry geo;
  OP_REQUIRES_OK(context, CheckBilinearSampleInputs(x.shape(), coords.shape(), &geo));
  tf::Tensor *grad_x = nullptr, *grad_coords = nullptr;
  if (!AllocateGradients<T>(context, OutputShape(coords.shape(), geo.channels), &grad_x,
                            &grad_coords)) {
    return;
  }
  BilinearSampleBackward(geo, Data<T>(x), Data<T>(coords), Data<T>(grad), MutableData<T>(grad_x),
                         MutableData<T>(grad_coords), TensorFlowParallelFor(context));
}

EDVR_REGISTER_CPU_KERNELS("EdvrBilinearSample", FunctionKernel, ComputeForward, ComputeGradient)

}  // namespace
}  // namespace edvr
