/* Output length of the EDVR deformable ops along one axis (docs/ops.md). Free of GE headers, so
 * tests/tbe/test_out_size.py compiles it without CANN and checks it against the plan's out_size. */
#ifndef EDVR_KERNELS_TBE_OP_PROTO_EDVR_OUT_SIZE_H_
#define EDVR_KERNELS_TBE_OP_PROTO_EDVR_OUT_SIZE_H_

#include <cstdint>

namespace edvr {

/* (in + pad - span) / stride + 1 with span = dilation * (kernel - 1) + 1 and `pad` the sum of both
 * sides' padding; -1 when the dilated kernel does not fit. The check comes first because C++
 * division truncates toward zero: a kernel one row too large at stride 2 would otherwise give 1. */
inline int64_t OutSize(int64_t in, int64_t pad, int64_t kernel, int64_t dilation, int64_t stride) {
  const int64_t span = dilation * (kernel - 1) + 1;
  return in + pad < span ? -1 : (in + pad - span) / stride + 1;
}

}  // namespace edvr

#endif  // EDVR_KERNELS_TBE_OP_PROTO_EDVR_OUT_SIZE_H_
