// CPU kernels of deformable_offsets: see deformable_offsets.h.
#include "deformable_offsets.h"

#include <algorithm>
#include <cstring>

#include "bilinear.h"

namespace edvr {
namespace {

// Element strides of the NHWC tensors involved, derived once from the geometry.
struct Layout {
  int64_t kernel_points;   // K = kh * kw
  int64_t group_channels;  // Cg = C / G
  int64_t image_size;      // H * W * C, one batch item of x
  int64_t offset_row;      // Wo * 3GK, one output row of offsets
  int64_t offset_batch;    // Ho * Wo * 3GK
  int64_t y_row;           // Wo * kw * C, one row of y
  int64_t y_batch;         // Ho * kh * Wo * kw * C

  explicit Layout(const DeformableOffsetsGeometry& g)
      : kernel_points(g.kernel_h * g.kernel_w),
        group_channels(g.channels / g.groups),
        image_size(g.in_height * g.in_width * g.channels),
        offset_row(g.out_width * 3 * g.groups * g.kernel_h * g.kernel_w),
        offset_batch(g.out_height * g.out_width * 3 * g.groups * g.kernel_h * g.kernel_w),
        y_row(g.out_width * g.kernel_w * g.channels),
        y_batch(g.out_height * g.kernel_h * g.out_width * g.kernel_w * g.channels) {}
};

// Sampling position and modulation of kernel point k of group g at (ho, wo).
template <typename T>
struct Tap {
  T py, px, mask;
};

template <typename T>
inline Tap<T> ReadTap(const DeformableOffsetsGeometry& geo, const Layout& lay, const T* off_pixel,
                      int64_t ho, int64_t wo, int64_t g, int64_t i, int64_t j) {
  const int64_t gk = geo.groups * lay.kernel_points;
  const int64_t ch = g * lay.kernel_points + i * geo.kernel_w + j;
  const T dx = off_pixel[ch], dy = off_pixel[gk + ch];
  const T mask = geo.modulated ? off_pixel[2 * gk + ch] : T(1);
  const T base_y = T(ho * geo.stride_h - geo.pad_top + i * geo.dilation_h);
  const T base_x = T(wo * geo.stride_w - geo.pad_left + j * geo.dilation_w);
  return Tap<T>{base_y + dy, base_x + dx, mask};
}

}  // namespace

template <typename T>
void DeformableOffsetsForward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                              T* y, const ParallelFor& parallel_for) {
  const Layout lay(geo);
  const int64_t cg = lay.group_channels;
  const int64_t gk = geo.groups * lay.kernel_points;
  const int64_t cost = geo.out_width * lay.kernel_points * (geo.channels * 3 + geo.groups * 60);
  parallel_for(geo.batch * geo.out_height, cost, [&](int64_t begin, int64_t end) {
    CornerScratch<T> scratch(cg);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / geo.out_height, ho = unit % geo.out_height;
        const T* image = x + n * lay.image_size;
        const T* off_row = offsets + n * lay.offset_batch + ho * lay.offset_row;
        for (int64_t wo = 0; wo < geo.out_width; ++wo) {
          const T* off_pixel = off_row + wo * 3 * gk;
          for (int64_t i = 0; i < geo.kernel_h; ++i) {
            T* y_out = y + n * lay.y_batch + (ho * geo.kernel_h + i) * lay.y_row +
                       wo * geo.kernel_w * geo.channels;
            for (int64_t j = 0; j < geo.kernel_w; ++j) {
              for (int64_t g = 0; g < geo.groups; ++g) {
                const Tap<T> tap = ReadTap(geo, lay, off_pixel, ho, wo, g, i, j);
                const BilinearPoint<T> p =
                    LocateBilinear(tap.py, tap.px, geo.in_height, geo.in_width, geo.channels);
                SampleChannels<kChannels>(image + g * cg, p, tap.mask, cg, scratch,
                                          y_out + j * geo.channels + g * cg);
              }
            }
          }
        }
      }
    });
  });
}

template <typename T>
void DeformableOffsetsBackward(const DeformableOffsetsGeometry& geo, const T* x, const T* offsets,
                               const T* grad_y, T* grad_x, T* grad_offsets, int64_t threads,
                               const ParallelFor& parallel_for) {
  const Layout lay(geo);
  const int64_t cg = lay.group_channels;
  const int64_t gk = geo.groups * lay.kernel_points;
  // With a batch item per thread or more, a unit is a whole batch item: grad_y
  // is then read as one contiguous stream. Otherwise a unit is a batch item and
  // a block of whole groups spanning at least 16 channels (a 64-byte line of
  // float32), so that no two units share a cache line of grad_x or grad_y.
  const int64_t groups_per_block =
      geo.batch >= threads ? geo.groups
                           : std::min(geo.groups, std::max<int64_t>(1, (16 + cg - 1) / cg));
  const int64_t blocks = (geo.groups + groups_per_block - 1) / groups_per_block;
  const int64_t pixels = geo.in_height * geo.in_width;
  const int64_t cost = geo.out_height * geo.out_width * lay.kernel_points *
                       (groups_per_block * cg * 14 + groups_per_block * 80);
  parallel_for(geo.batch * blocks, cost, [&](int64_t begin, int64_t end) {
    CornerScratch<T> scratch(cg);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / blocks, block = unit % blocks;
        const int64_t g_begin = block * groups_per_block;
        const int64_t g_end = std::min(geo.groups, g_begin + groups_per_block);
        const int64_t c_begin = g_begin * cg, c_count = (g_end - g_begin) * cg;
        const T* image = x + n * lay.image_size;
        T* grad_image = grad_x + n * lay.image_size;
        for (int64_t q = 0; q < pixels; ++q) {
          std::fill_n(grad_image + q * geo.channels + c_begin, c_count, T(0));
        }
        for (int64_t ho = 0; ho < geo.out_height; ++ho) {
          for (int64_t wo = 0; wo < geo.out_width; ++wo) {
            const int64_t pixel = (n * geo.out_height + ho) * geo.out_width + wo;
            const T* off_pixel = offsets + pixel * 3 * gk;
            T* grad_off_pixel = grad_offsets + pixel * 3 * gk;
            for (int64_t i = 0; i < geo.kernel_h; ++i) {
              const T* gy_row = grad_y + n * lay.y_batch + (ho * geo.kernel_h + i) * lay.y_row +
                                wo * geo.kernel_w * geo.channels;
              for (int64_t j = 0; j < geo.kernel_w; ++j) {
                for (int64_t g = g_begin; g < g_end; ++g) {
                  const Tap<T> tap = ReadTap(geo, lay, off_pixel, ho, wo, g, i, j);
                  const BilinearPoint<T> p =
                      LocateBilinear(tap.py, tap.px, geo.in_height, geo.in_width, geo.channels);
                  const PointGradient<T> pg = AccumulateChannelGradients<kChannels>(
                      image + g * cg, p, tap.mask, gy_row + j * geo.channels + g * cg, cg, scratch,
                      grad_image + g * cg);
                  const int64_t ch = g * lay.kernel_points + i * geo.kernel_w + j;
                  grad_off_pixel[ch] = pg.d_px;
                  grad_off_pixel[gk + ch] = pg.d_py;
                  grad_off_pixel[2 * gk + ch] = geo.modulated ? pg.d_scale : T(0);
                }
              }
            }
          }
        }
      }
    });
  });
}

template void DeformableOffsetsForward<float>(const DeformableOffsetsGeometry&, const float*,
                                              const float*, float*, const ParallelFor&);
template void DeformableOffsetsForward<double>(const DeformableOffsetsGeometry&, const double*,
                                               const double*, double*, const ParallelFor&);
template void DeformableOffsetsBackward<float>(const DeformableOffsetsGeometry&, const float*,
                                               const float*, const float*, float*, float*,
                                               int64_t, const ParallelFor&);
template void DeformableOffsetsBackward<double>(const DeformableOffsetsGeometry&, const double*,
                                                const double*, const double*, double*, double*,
                                                int64_t, const ParallelFor&);

}  // namespace edvr
