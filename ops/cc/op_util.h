// What the op registrations share: TensorFlow's CPU thread pool as the kernels'
// ParallelFor, and the checks, shapes and allocation of gradient ops.
#ifndef EDVR_OPS_CC_OP_UTIL_H_
#define EDVR_OPS_CC_OP_UTIL_H_

#include "kernels/cpu/bfloat16.h"
#include "kernels/cpu/parallel.h"
#include "tensorflow/core/framework/numeric_types.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace edvr {

// The kernels' element type of a TensorFlow element type: the framework-free BFloat16 for
// tensorflow::bfloat16 (Eigen::bfloat16, the same 16 bits), else the type itself.
template <typename T>
struct KernelType {
  using type = T;
};
template <>
struct KernelType<::tensorflow::bfloat16> {
  using type = BFloat16;
};
static_assert(sizeof(::tensorflow::bfloat16) == sizeof(BFloat16), "bfloat16 layouts differ");

// A tensor's elements as the kernels' type.
template <typename T>
const typename KernelType<T>::type* Data(const ::tensorflow::Tensor& t) {
  return reinterpret_cast<const typename KernelType<T>::type*>(t.flat<T>().data());
}
template <typename T>
typename KernelType<T>::type* MutableData(::tensorflow::Tensor* t) {
  return reinterpret_cast<typename KernelType<T>::type*>(t->flat<T>().data());
}

inline ParallelFor TensorFlowParallelFor(::tensorflow::OpKernelContext* context) {
  const auto* workers = context->device()->tensorflow_cpu_worker_threads();
  return [workers](int64_t total, int64_t cost_per_unit,
                   const std::function<void(int64_t, int64_t)>& work) {
    ::tensorflow::Shard(workers->num_threads, workers->workers, total, cost_per_unit,
                        [&work](int64_t begin, int64_t end) { work(begin, end); });
  };
}

inline int64_t CpuThreads(::tensorflow::OpKernelContext* context) {
  return context->device()->tensorflow_cpu_worker_threads()->num_threads;
}

// Shape function of a gradient op (grad, a, b, ...) -> (grad_a, grad_b, ...).
inline ::tensorflow::Status GradientShapes(::tensorflow::shape_inference::InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(i + 1));
  return ::tensorflow::Status();
}

// For a gradient op (grad, a, b, ...) -> (grad_a, grad_b, ...): checks that grad
// (input 0) has the forward output's shape, allocates each output shaped like its
// input (output i like input i + 1) into *outputs[i], and returns whether there is
// anything to compute (if not, they are zeroed).
template <typename T, typename... Outputs>
bool AllocateGradients(::tensorflow::OpKernelContext* context,
                       const ::tensorflow::TensorShape& y_shape, Outputs... outputs) {
  ::tensorflow::Tensor** const all[] = {outputs...};
  const ::tensorflow::Tensor& grad = context->input(0);
  if (grad.shape() != y_shape) {
    context->CtxFailure(::tensorflow::errors::InvalidArgument(
        "grad must have the shape of the forward output ", y_shape.DebugString(), ", got ",
        grad.shape().DebugString()));
    return false;
  }
  for (int i = 0; i < int(sizeof...(outputs)); ++i) {
    const ::tensorflow::Status status =
        context->allocate_output(i, context->input(i + 1).shape(), all[i]);
    if (!status.ok()) {
      context->CtxFailure(status);
      return false;
    }
  }
  if (grad.NumElements() > 0) return true;
  for (::tensorflow::Tensor** out : all) (*out)->flat<T>().setZero();
  return false;
}

}  // namespace edvr

#endif  // EDVR_OPS_CC_OP_UTIL_H_
