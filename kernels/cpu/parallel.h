// The one framework dependency the CPU kernels have: a parallel-for supplied by the caller.
#ifndef EDVR_KERNELS_CPU_PARALLEL_H_
#define EDVR_KERNELS_CPU_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace edvr {

// Calls work(begin, end) on disjoint sub-ranges covering [0, total), possibly in
// parallel. cost_per_unit is a rough count of cycles one unit takes, used to
// decide how finely to split.
using ParallelFor = std::function<void(int64_t total, int64_t cost_per_unit,
                                       const std::function<void(int64_t, int64_t)>& work)>;

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_PARALLEL_H_
