// Adapts TensorFlow's CPU thread pool to the kernels' ParallelFor.
#ifndef EDVR_OPS_CC_CPU_PARALLEL_H_
#define EDVR_OPS_CC_CPU_PARALLEL_H_

#include "kernels/cpu/parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace edvr {

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

}  // namespace edvr

#endif  // EDVR_OPS_CC_CPU_PARALLEL_H_
