// What the op registrations share: the dtypes of the schemas and the registration of their
// CPU kernels, a kernel class that runs a function, the tensors as the kernels' element
// types, TensorFlow's CPU thread pool as the kernels' ParallelFor, and the allocation of
// outputs.
#ifndef EDVR_OPS_CC_OP_UTIL_H_
#define EDVR_OPS_CC_OP_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/bfloat16.h"
#include "kernels/cpu/parallel.h"
#include "tensorflow/core/framework/numeric_types.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace edvr {

namespace tf = ::tensorflow;

// The dtypes of every op's schema (REGISTER_OP(...).EDVR_DTYPE_ATTR): exactly those
// EDVR_REGISTER_CPU_KERNELS registers. A method-position macro, like EDVR_DEFORMABLE_ATTRS,
// so that tests/tbe/test_tbe_consistency.py, which reads the schemas, expands it.
#define EDVR_DTYPE_ATTR Attr("T: {float, double, bfloat16}")

// Registers, for each dtype T of EDVR_DTYPE_ATTR, the CPU kernels KERNEL<FORWARD<T>> of op
// NAME and KERNEL<GRADIENT<T>> of op NAME "Grad".
#define EDVR_REGISTER_CPU_KERNELS(NAME, KERNEL, FORWARD, GRADIENT)           \
  EDVR_REGISTER_CPU_KERNELS_OF_TYPE(NAME, KERNEL, FORWARD, GRADIENT, float)  \
  EDVR_REGISTER_CPU_KERNELS_OF_TYPE(NAME, KERNEL, FORWARD, GRADIENT, double) \
  EDVR_REGISTER_CPU_KERNELS_OF_TYPE(NAME, KERNEL, FORWARD, GRADIENT, tf::bfloat16)
#define EDVR_REGISTER_CPU_KERNELS_OF_TYPE(NAME, KERNEL, FORWARD, GRADIENT, T)              \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tf::DEVICE_CPU).TypeConstraint<T>("T"),        \
                          KERNEL<FORWARD<T>>);                                             \
  REGISTER_KERNEL_BUILDER(Name(NAME "Grad").Device(tf::DEVICE_CPU).TypeConstraint<T>("T"), \
                          KERNEL<GRADIENT<T>>);

// A CPU kernel whose work is the function Run: the ops' kernels differ in their function only.
template <void (*Run)(tf::OpKernelContext*)>
class FunctionKernel : public tf::OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(tf::OpKernelContext* context) override { Run(context); }
};

// "[1, 2, 3]": a shape or attribute list for an error message.
inline std::string JoinShape(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

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

// Allocates output 0 with `shape` into *y; returns whether there is anything to compute.
inline bool AllocateOutput(::tensorflow::OpKernelContext* context,
                           const ::tensorflow::TensorShape& shape, ::tensorflow::Tensor** y) {
  const ::tensorflow::Status status = context->allocate_output(0, shape, y);
  if (!status.ok()) {
    context->CtxFailure(status);
    return false;
  }
  return (*y)->NumElements() > 0;
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
