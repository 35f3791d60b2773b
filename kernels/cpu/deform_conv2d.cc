// CPU kernels of the fused deformable convolution: see deform_conv2d.h.
//
// Both passes work on tiles of output pixels. The forward samples a tile's
// columns [pixels, K*C] into a buffer that stays in cache and multiplies it by
// the filters. The backward, per tile, multiplies grad_y by the
// transposed filters to get the columns' gradient, accumulates that into grad_x
// and grad_offsets as DeformableOffsetsBackward does (recomputing the columns on
// the way), and adds columns^T . grad_y to its sum of grad_filters.
#include "deform_conv2d.h"

#include <algorithm>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "bilinear.h"
#include "deformable_taps.h"
#include "gemm.h"
#include "gemm_bf16.h"

namespace edvr {
namespace {

// The forward's tile is one 6-row block of the matrix product (gemm.h), so that its
// columns (6 x K*C) are still in L1 when the product reads them; measured 2-3% faster
// per point than 64. The backward's matrix products need longer tiles to be efficient
// (its filters' gradient sums over the tile's pixels).
constexpr int64_t kForwardTilePixels = 6;
constexpr int64_t kBackwardTilePixels = 64;

// A block of whole deformable groups [g_begin, g_end): the unit of the backward's
// grad_x partition. Its columns are laid out [K, channels], channels = (g_end -
// g_begin) * Cg, and transposed_filters holds the matching rows of the filters as
// an [F, K * channels] matrix.
template <typename T>
struct GroupBlock {
  int64_t g_begin, g_end, channels;
  std::vector<int64_t> out_offset;  // tap q of the block: k * channels + (g - g_begin) * Cg
  std::vector<T> transposed_filters;
};

template <typename T>
std::vector<GroupBlock<T>> MakeGroupBlocks(const DeformableOffsetsGeometry& geo,
                                           int64_t groups_per_block, int64_t features,
                                           const T* filters) {
  const int64_t k_points = geo.kernel_h * geo.kernel_w, cg = geo.channels / geo.deformable_groups;
  std::vector<GroupBlock<T>> blocks;
  for (int64_t g_begin = 0; g_begin < geo.deformable_groups; g_begin += groups_per_block) {
    GroupBlock<T> b;
    b.g_begin = g_begin;
    b.g_end = std::min(geo.deformable_groups, g_begin + groups_per_block);
    b.channels = (b.g_end - b.g_begin) * cg;
    for (int64_t g = b.g_begin; g < b.g_end; ++g) {
      for (int64_t k = 0; k < k_points; ++k) {
        b.out_offset.push_back(k * b.channels + (g - b.g_begin) * cg);
      }
    }
    const int64_t width = k_points * b.channels;
    b.transposed_filters.resize(features * width);
    for (int64_t k = 0; k < k_points; ++k) {
      for (int64_t c = 0; c < b.channels; ++c) {
        const T* row = filters + (k * geo.channels + b.g_begin * cg + c) * features;
        for (int64_t f = 0; f < features; ++f) {
          b.transposed_filters[f * width + k * b.channels + c] = row[f];
        }
      }
    }
    blocks.push_back(std::move(b));
  }
  return blocks;
}

// Samples the columns of output pixels [p_begin, p_begin + p_count), pixel p's K*C values
// at columns + (p - p_begin) * row. Offsets of another type than T (bfloat16) are widened a
// pixel at a time into pixel_offsets (3*G*K values): each is read once.
template <int kChannels, typename T, typename O>
void SampleColumns(const DeformableOffsetsGeometry& geo, const Taps& taps, const T* x,
                   const O* offsets, const T* ones, const T* zeros, int64_t p_begin,
                   int64_t p_count, int64_t row, PointTable<T>* table, T* pixel_offsets,
                   T* columns) {
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t out_pixels = geo.out_height * geo.out_width;
  for (int64_t p = p_begin; p < p_begin + p_count; ++p) {
    const int64_t n = p / out_pixels;
    const int64_t ho = p % out_pixels / geo.out_width, wo = p % geo.out_width;
    const T* off_pixel;
    if constexpr (std::is_same<T, O>::value) {
      off_pixel = offsets + p * 3 * taps.count;
    } else {
      WidenBFloat16(offsets + p * 3 * taps.count, 3 * taps.count, pixel_offsets);
      off_pixel = pixel_offsets;
    }
    LocatePixelTaps(geo, taps, off_pixel, ho, wo, 0, taps.count, table);
    SampleTablePoints<kChannels>(x + n * image_size, *table, taps.count,
                                 geo.modulated ? off_pixel + 2 * taps.count : ones,
                                 taps.group_channel.data(), taps.out_offset.data(), cg, zeros,
                                 columns + (p - p_begin) * row);
  }
}

}  // namespace

template <typename T>
void DeformConv2DForward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                         const T* offsets, const T* filters, T* y,
                         const ParallelFor& parallel_for) {
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t total_pixels = geo.batch * geo.out_height * geo.out_width;
  const int64_t width = geo.kernel_h * geo.kernel_w * geo.channels;  // K*C: one pixel's columns
  const Taps taps = MakeTaps(geo, geo.kernel_w * geo.channels);
  const int64_t tiles = (total_pixels + kForwardTilePixels - 1) / kForwardTilePixels;
  const int64_t cost = kForwardTilePixels * (taps.count * (cg * 2 + 30) + width * features * 2);
  parallel_for(tiles, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<T> zeros(cg, T(0)), ones(taps.count, T(1));
    std::vector<T> columns(kForwardTilePixels * width);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t p_begin = tile * kForwardTilePixels;
        const int64_t p_count = std::min(kForwardTilePixels, total_pixels - p_begin);
        SampleColumns<kChannels>(geo, taps, x, offsets, ones.data(), zeros.data(), p_begin,
                                 p_count, width, &table, static_cast<T*>(nullptr), columns.data());
        Gemm<T>(p_count, features, width, {columns.data(), width, 1}, filters, features,
                y + p_begin * features, features, /*accumulate=*/false);
      }
    });
  });
}

// x is widened once up front rather than in the sampling loop: every element is read by
// about K taps; the offsets, read once, a pixel at a time. A tile's columns are rounded to
// bfloat16 (rows padded to an even length, the pad 0, for the pairs of vdpbf16ps) and its y
// is rounded as it is written.
template <>
void DeformConv2DForward<BFloat16>(const DeformableOffsetsGeometry& geo, int64_t features,
                                   const BFloat16* x, const BFloat16* offsets,
                                   const BFloat16* filters, BFloat16* y,
                                   const ParallelFor& parallel_for) {
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t total_pixels = geo.batch * geo.out_height * geo.out_width;
  const int64_t width = geo.kernel_h * geo.kernel_w * geo.channels;
  const int64_t row = width + width % 2;
  const Taps taps = MakeTaps(geo, geo.kernel_w * geo.channels);
  const FloatBuffer x32 =
      WidenAll(x, geo.batch * geo.in_height * geo.in_width * geo.channels, parallel_for);
  const PackedPairs packed =
      PackPairs(width, features, [&](int64_t k, int64_t f) { return filters[k * features + f]; });
  const int64_t tiles = (total_pixels + kForwardTilePixels - 1) / kForwardTilePixels;
  const int64_t cost = kForwardTilePixels * (taps.count * (cg * 2 + 30) + width * features);
  parallel_for(tiles, cost, [&](int64_t begin, int64_t end) {
    PointTable<float> table(taps.count);
    const std::vector<float> zeros(cg, 0.0f), ones(taps.count, 1.0f);
    std::vector<float> columns(kForwardTilePixels * row, 0.0f);
    std::vector<float> y_tile(kForwardTilePixels * features);
    std::vector<BFloat16> columns16(kForwardTilePixels * row);
    std::vector<float> pixel_offsets(3 * taps.count);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t p_begin = tile * kForwardTilePixels;
        const int64_t p_count = std::min(kForwardTilePixels, total_pixels - p_begin);
        SampleColumns<kChannels>(geo, taps, x32.get(), offsets, ones.data(), zeros.data(),
                                 p_begin, p_count, row, &table, pixel_offsets.data(),
                                 columns.data());
        NarrowToBFloat16(columns.data(), p_count * row, columns16.data());
        GemmBF16(p_count, columns16.data(), row, packed, y_tile.data(), features);
        NarrowToBFloat16(y_tile.data(), p_count * features, y + p_begin * features);
      }
    });
  });
}

namespace {

// The backward computed in T, with offsets and grad_offsets stored as S: when S is not T
// (bfloat16), a pixel's offsets are widened as they are read and its offsets' gradient is
// rounded as it is written (each is touched once), rather than through whole-tensor copies.
template <typename T, typename S>
void Backward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
              const S* offsets, const T* filters, const T* grad_y, T* grad_x, S* grad_offsets,
              T* grad_filters, int64_t threads, const ParallelFor& parallel_for) {
  constexpr bool kDirect = std::is_same<T, S>::value;
  const int64_t k_points = geo.kernel_h * geo.kernel_w;
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t in_pixels = geo.in_height * geo.in_width;
  const int64_t out_pixels = geo.out_height * geo.out_width;
  const int64_t filters_size = k_points * geo.channels * features;
  const Taps taps = MakeTaps(geo, geo.kernel_w * geo.channels);
  const std::vector<GroupBlock<T>> blocks =
      MakeGroupBlocks(geo, GroupsPerBlock(geo, threads), features, filters);
  const int64_t block_count = blocks.size();
  const int64_t max_width = k_points * blocks[0].channels;  // the first block is the widest
  const int64_t cost = out_pixels * max_width * (6 + 40 / cg + features * 4);

  std::mutex sums_mutex;
  std::vector<std::pair<int64_t, std::vector<T>>> sums;  // (range begin, its grad_filters)
  parallel_for(geo.batch * block_count, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<T> zeros(cg, T(0)), ones(taps.count, T(1));
    std::vector<T> sinks(4 * cg), sum(filters_size, T(0));
    std::vector<T> grad_columns(kBackwardTilePixels * max_width), columns(kBackwardTilePixels * max_width);
    std::vector<T> pixel_offsets(kDirect ? 0 : 3 * taps.count), pixel_grad(pixel_offsets.size());
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / block_count;
        const GroupBlock<T>& block = blocks[unit % block_count];
        const int64_t width = k_points * block.channels;
        const int64_t q_begin = block.g_begin * k_points;
        const int64_t q_count = (block.g_end - block.g_begin) * k_points;
        const T* image = x + n * image_size;
        T* grad_image = grad_x + n * image_size;
        for (int64_t p = 0; p < in_pixels; ++p) {
          std::fill_n(grad_image + p * geo.channels + block.g_begin * cg, block.channels, T(0));
        }
        for (int64_t p_begin = 0; p_begin < out_pixels; p_begin += kBackwardTilePixels) {
          const int64_t p_count = std::min(kBackwardTilePixels, out_pixels - p_begin);
          const T* grad_tile = grad_y + (n * out_pixels + p_begin) * features;
          Gemm<T>(p_count, width, features, {grad_tile, features, 1},
                  block.transposed_filters.data(), width, grad_columns.data(), width,
                  /*accumulate=*/false);
          for (int64_t p = p_begin; p < p_begin + p_count; ++p) {
            const int64_t ho = p / geo.out_width, wo = p % geo.out_width;
            const int64_t pixel_index = n * out_pixels + p;
            const T* off_pixel;
            T* grad_off_pixel;
            if constexpr (kDirect) {
              off_pixel = offsets + pixel_index * 3 * taps.count;
              grad_off_pixel = grad_offsets + pixel_index * 3 * taps.count;
            } else {
              WidenBFloat16(offsets + pixel_index * 3 * taps.count, 3 * taps.count,
                            pixel_offsets.data());
              off_pixel = pixel_offsets.data();
              grad_off_pixel = pixel_grad.data();
            }
            LocatePixelTaps(geo, taps, off_pixel, ho, wo, q_begin, q_count, &table);
            const int64_t tile_offset = (p - p_begin) * width;
            AccumulateTablePoints<kChannels, /*kStoreSamples=*/true>(
                image, table, q_count,
                (geo.modulated ? off_pixel + 2 * taps.count : ones.data()) + q_begin,
                taps.group_channel.data() + q_begin, grad_columns.data() + tile_offset,
                block.out_offset.data(), cg, zeros.data(), sinks.data(), grad_image,
                grad_off_pixel + q_begin, grad_off_pixel + taps.count + q_begin,
                grad_off_pixel + 2 * taps.count + q_begin, columns.data() + tile_offset);
            if (!geo.modulated) {
              std::fill_n(grad_off_pixel + 2 * taps.count + q_begin, q_count, T(0));
            }
            if constexpr (!kDirect) {  // this unit's taps of the dx, dy and mask blocks
              for (int64_t part = 0; part < 3; ++part) {
                const int64_t first = part * taps.count + q_begin;
                NarrowToBFloat16(pixel_grad.data() + first, q_count,
                                 grad_offsets + pixel_index * 3 * taps.count + first);
              }
            }
          }
          // The block's rows of grad_filters, [channels, F] for each kernel point k.
          for (int64_t k = 0; k < k_points; ++k) {
            Gemm<T>(block.channels, features, p_count,
                    {columns.data() + k * block.channels, 1, width}, grad_tile, features,
                    sum.data() + (k * geo.channels + block.g_begin * cg) * features, features,
                    /*accumulate=*/true);
          }
        }
      }
    });
    std::lock_guard<std::mutex> lock(sums_mutex);
    sums.emplace_back(begin, std::move(sum));
  });
  // Added in the order of the ranges, so that the result does not depend on timing.
  std::sort(sums.begin(), sums.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::fill_n(grad_filters, filters_size, T(0));
  for (const auto& range_sum : sums) {
    for (int64_t i = 0; i < filters_size; ++i) grad_filters[i] += range_sum.second[i];
  }
}

}  // namespace

template <typename T>
void DeformConv2DBackward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                          const T* offsets, const T* filters, const T* grad_y, T* grad_x,
                          T* grad_offsets, T* grad_filters, int64_t threads,
                          const ParallelFor& parallel_for) {
  Backward(geo, features, x, offsets, filters, grad_y, grad_x, grad_offsets, grad_filters,
           threads, parallel_for);
}

template <>
void DeformConv2DBackward<BFloat16>(const DeformableOffsetsGeometry& geo, int64_t features,
                                    const BFloat16* x, const BFloat16* offsets,
                                    const BFloat16* filters, const BFloat16* grad_y,
                                    BFloat16* grad_x, BFloat16* grad_offsets,
                                    BFloat16* grad_filters, int64_t threads,
                                    const ParallelFor& parallel_for) {
  const int64_t x_size = geo.batch * geo.in_height * geo.in_width * geo.channels;
  const int64_t out_pixels = geo.batch * geo.out_height * geo.out_width;
  const int64_t filters_size = geo.kernel_h * geo.kernel_w * geo.channels * features;
  const FloatBuffer x32 = WidenAll(x, x_size, parallel_for);
  const FloatBuffer filters32 = WidenAll(filters, filters_size, parallel_for);
  const FloatBuffer grad_y32 = WidenAll(grad_y, out_pixels * features, parallel_for);
  const FloatBuffer grad_x32 = NewFloatBuffer(x_size);
  const FloatBuffer grad_filters32 = NewFloatBuffer(filters_size);
  Backward(geo, features, x32.get(), offsets, filters32.get(), grad_y32.get(), grad_x32.get(),
           grad_offsets, grad_filters32.get(), threads, parallel_for);
  NarrowAll(grad_x32.get(), x_size, grad_x, parallel_for);
  NarrowAll(grad_filters32.get(), filters_size, grad_filters, parallel_for);
}

#define EDVR_INSTANTIATE(T)                                                                   \
  template void DeformConv2DForward<T>(const DeformableOffsetsGeometry&, int64_t, const T*,   \
                                       const T*, const T*, T*, const ParallelFor&);           \
  template void DeformConv2DBackward<T>(const DeformableOffsetsGeometry&, int64_t, const T*,  \
                                        const T*, const T*, const T*, T*, T*, T*, int64_t,    \
                                        const ParallelFor&);
EDVR_INSTANTIATE(float)
EDVR_INSTANTIATE(double)
#undef EDVR_INSTANTIATE

}  // namespace edvr
