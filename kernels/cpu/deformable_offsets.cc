// CPU kernels of deformable_offsets: see deformable_offsets.h.
//
// Both passes walk the output pixels (n, ho, wo) and, for each, its G*K taps
// q = g*K + k: first the taps' positions are computed and located a vector of
// taps at a time (PointTable::Locate), then each tap's group of channels is
// moved a vector of channels at a time.
#include "deformable_offsets.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "bilinear.h"
#include "deformable_taps.h"

namespace edvr {

namespace {

// The forward for tensors stored as S, computing in T = Stored<S>::Compute: bfloat16 x is
// read and y written in place (a vector of channels at a time), a pixel's offsets widened
// once as they are read.
template <typename S>
void Forward(const DeformableOffsetsGeometry& geo, const S* x, const S* offsets, S* y,
             const ParallelFor& parallel_for) {
  using T = typename Stored<S>::Compute;
  constexpr bool kDirect = std::is_same<T, S>::value;
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t y_row = geo.out_width * geo.kernel_w * geo.channels;
  const Taps taps = MakeTaps(geo, y_row);
  const int64_t y_batch = geo.out_height * geo.kernel_h * y_row;
  const int64_t cost = geo.out_width * taps.count * (cg * 2 + 30);
  parallel_for(geo.batch * geo.out_height, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<S> zeros(cg, S{0});
    const std::vector<T> ones(taps.count, T(1));
    std::vector<T> pixel_offsets(kDirect ? 0 : 3 * taps.count);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / geo.out_height, ho = unit % geo.out_height;
        const S* image = x + n * image_size;
        S* y_rows = y + n * y_batch + ho * geo.kernel_h * y_row;
        for (int64_t wo = 0; wo < geo.out_width; ++wo) {
          const int64_t pixel_index = (n * geo.out_height + ho) * geo.out_width + wo;
          const T* off_pixel;
          if constexpr (kDirect) {
            off_pixel = offsets + pixel_index * 3 * taps.count;
          } else {
            WidenBFloat16(offsets + pixel_index * 3 * taps.count, 3 * taps.count,
                          pixel_offsets.data());
            off_pixel = pixel_offsets.data();
          }
          LocatePixelTaps(geo, taps, off_pixel, ho, wo, 0, taps.count, &table);
          SampleTablePoints<kChannels>(image, table, taps.count,
                                       geo.modulated ? off_pixel + 2 * taps.count : ones.data(),
                                       taps.group_channel.data(), taps.out_offset.data(), cg,
                                       zeros.data(), y_rows + wo * geo.kernel_w * geo.channels);
        }
      }
    });
  });
}

}  // namespace

template <typename T>
void DeformableOffsetsForward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                              T* y, const ParallelFor& parallel_for) {
  Forward(geo, x, offsets, y, parallel_for);
}

template <typename T>
void DeformableOffsetsBackward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                               const T* grad_y, T* grad_x, T* grad_offsets, int64_t threads,
                               const ParallelFor& parallel_for) {
  const int64_t k_points = geo.kernel_h * geo.kernel_w;
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t pixels = geo.in_height * geo.in_width;
  const int64_t y_row = geo.out_width * geo.kernel_w * geo.channels;
  const Taps taps = MakeTaps(geo, y_row);
  const int64_t y_batch = geo.out_height * geo.kernel_h * y_row;
  // A unit is a batch item and a block of groups; it owns its part of grad_x and grad_offsets.
  const int64_t groups_per_block = GroupsPerBlock(geo, threads);
  const int64_t blocks = (geo.deformable_groups + groups_per_block - 1) / groups_per_block;
  const int64_t cost = geo.out_height * geo.out_width * groups_per_block * k_points * (cg * 6 + 40);
  parallel_for(geo.batch * blocks, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<T> zeros(cg, T(0));
    const std::vector<T> ones(taps.count, T(1));
    std::vector<T> sinks(4 * cg);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / blocks, block = unit % blocks;
        const int64_t g_begin = block * groups_per_block;
        const int64_t g_end = std::min(geo.deformable_groups, g_begin + groups_per_block);
        const T* image = x + n * image_size;
        T* grad_image = grad_x + n * image_size;
        const int64_t q_begin = g_begin * k_points, q_count = (g_end - g_begin) * k_points;
        for (int64_t p = 0; p < pixels; ++p) {
          std::fill_n(grad_image + p * geo.channels + g_begin * cg, (g_end - g_begin) * cg, T(0));
        }
        for (int64_t ho = 0; ho < geo.out_height; ++ho) {
          for (int64_t wo = 0; wo < geo.out_width; ++wo) {
            const int64_t pixel_index = (n * geo.out_height + ho) * geo.out_width + wo;
            const T* off_pixel = offsets + pixel_index * 3 * taps.count;
            T* grad_off_pixel = grad_offsets + pixel_index * 3 * taps.count;
            LocatePixelTaps(geo, taps, off_pixel, ho, wo, q_begin, q_count, &table);
            const T* gy_pixel =
                grad_y + n * y_batch + ho * geo.kernel_h * y_row + wo * geo.kernel_w * geo.channels;
            AccumulateTablePoints<kChannels>(
                image, table, q_count,
                (geo.modulated ? off_pixel + 2 * taps.count : ones.data()) + q_begin,
                taps.group_channel.data() + q_begin, gy_pixel, taps.out_offset.data() + q_begin, cg,
                zeros.data(), sinks.data(), grad_image, grad_off_pixel + q_begin,
                grad_off_pixel + taps.count + q_begin, grad_off_pixel + 2 * taps.count + q_begin);
            if (!geo.modulated)
              std::fill_n(grad_off_pixel + 2 * taps.count + q_begin, q_count, T(0));
          }
        }
      }
    });
  });
}

template <>
void DeformableOffsetsBackward<BFloat16>(const DeformableOffsetsGeometry& geo, const BFloat16* x,
                                         const BFloat16* offsets, const BFloat16* grad_y,
                                         BFloat16* grad_x, BFloat16* grad_offsets, int64_t threads,
                                         const ParallelFor& parallel_for) {
  const int64_t x_size = geo.batch * geo.in_height * geo.in_width * geo.channels;
  const int64_t out_pixels = geo.batch * geo.out_height * geo.out_width;
  const int64_t k_points = geo.kernel_h * geo.kernel_w;
  const int64_t offsets_size = out_pixels * 3 * geo.deformable_groups * k_points;
  InFloat32({{x, x_size}, {offsets, offsets_size}, {grad_y, out_pixels * k_points * geo.channels}},
            {{grad_x, x_size}, {grad_offsets, offsets_size}}, parallel_for,
            [&](const float* const* in, float* const* out) {
              DeformableOffsetsBackward<float>(geo, in[0], in[1], in[2], out[0], out[1], threads,
                                               parallel_for);
            });
}

template void DeformableOffsetsForward<BFloat16>(const DeformableOffsetsGeometry&, const BFloat16*,
                                                 const BFloat16*, BFloat16*, const ParallelFor&);
#define EDVR_INSTANTIATE(T)                                                                        \
  template void DeformableOffsetsForward<T>(const DeformableOffsetsGeometry&, const T*, const T*,  \
                                            T*, const ParallelFor&);                               \
  template void DeformableOffsetsBackward<T>(const DeformableOffsetsGeometry&, const T*, const T*, \
                                             const T*, T*, T*, int64_t, const ParallelFor&);
EDVR_INSTANTIATE(float)
EDVR_INSTANTIATE(double)
#undef EDVR_INSTANTIATE

}  // namespace edvr
