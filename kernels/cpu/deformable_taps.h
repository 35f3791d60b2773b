// The taps of a deformable sampling window, shared by deformable_offsets.cc and
// deform_conv2d.cc: per-tap constants and the location of one output pixel's taps.
//
// Tap q = g*K + k, k = i*kw + j, samples channels [g*Cg, (g+1)*Cg) of x at
// (ho*sh - pad_top + i*dh + dy, wo*sw - pad_left + j*dw + dx) and is written at
// out_offset[q] = i*row_pitch + j*C + g*Cg from the pixel's first output element.
#ifndef EDVR_KERNELS_CPU_DEFORMABLE_TAPS_H_
#define EDVR_KERNELS_CPU_DEFORMABLE_TAPS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bilinear.h"
#include "deformable_offsets.h"

namespace edvr {

struct Taps {
  int64_t count;                        // G*K
  std::vector<int64_t> group_channel;   // g * Cg: the tap's channels in x
  std::vector<int64_t> out_offset;      // i*row_pitch + j*C + g*Cg
  std::vector<int64_t> base_y, base_x;  // i*dh and j*dw
};

inline Taps MakeTaps(const DeformableOffsetsGeometry& geo, int64_t row_pitch) {
  const int64_t k_points = geo.kernel_h * geo.kernel_w, cg = geo.channels / geo.deformable_groups;
  Taps t;
  t.count = geo.deformable_groups * k_points;
  for (int64_t q = 0; q < t.count; ++q) {
    const int64_t g = q / k_points, i = q % k_points / geo.kernel_w, j = q % geo.kernel_w;
    t.group_channel.push_back(g * cg);
    t.out_offset.push_back(i * row_pitch + j * geo.channels + g * cg);
    t.base_y.push_back(i * geo.dilation_h);
    t.base_x.push_back(j * geo.dilation_w);
  }
  return t;
}

// How the backward passes partition grad_x so that no two work units write the
// same element: with a batch item per thread or more, a unit is a whole batch
// item (and reads grad_y as one stream); otherwise a unit is a batch item and a
// block of this many whole groups, spanning at least 16 channels (a 64-byte line
// of float32).
inline int64_t GroupsPerBlock(const DeformableOffsetsGeometry& geo, int64_t threads) {
  if (geo.batch >= threads) return geo.deformable_groups;
  const int64_t cg = geo.channels / geo.deformable_groups;
  return std::min(geo.deformable_groups, std::max<int64_t>(1, (16 + cg - 1) / cg));
}

// Locates taps [q_begin, q_begin + q_count) of output pixel (ho, wo), whose offsets
// start at off_pixel, into entries [0, q_count) of the table.
template <typename T>
void LocatePixelTaps(const DeformableOffsetsGeometry& geo, const Taps& taps, const T* off_pixel,
                     int64_t ho, int64_t wo, int64_t q_begin, int64_t q_count,
                     PointTable<T>* table) {
  const T origin_y = T(ho * geo.stride_h - geo.pad_top);
  const T origin_x = T(wo * geo.stride_w - geo.pad_left);
  T* py = table->py();
  T* px = table->px();
  for (int64_t q = q_begin; q < q_begin + q_count; ++q) {
    py[q - q_begin] = origin_y + T(taps.base_y[q]) + off_pixel[taps.count + q];
    px[q - q_begin] = origin_x + T(taps.base_x[q]) + off_pixel[q];
  }
  table->Locate(q_count, geo.in_height, geo.in_width, geo.channels);
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_DEFORMABLE_TAPS_H_
