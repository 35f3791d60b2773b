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
// at columns + (p - p_begin) * row, computing in T. Offsets of another type than T (bfloat16)
// are widened a pixel at a time into pixel_offsets (3*G*K values): each is read once. x and
// the columns may be stored as bfloat16 (bilinear.h's Stored<>).
template <int kChannels, typename T, typename X, typename O, typename Column>
void SampleColumns(const DeformableOffsetsGeometry& geo, const Taps& taps, const X* x,
                   const O* offsets, const T* ones, const X* zeros, int64_t p_begin,
                   int64_t p_count, int64_t row, PointTable<T>* table, T* pixel_offsets,
                   Column* columns) {
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

// The forward for tensors stored as S, computing in T = Stored<S>::Compute. For S = bfloat16
// the columns are sampled straight from bfloat16 x (widened a vector of channels at a time)
// into bfloat16 (rows padded to an even length, the pad 0, for the pairs of vdpbf16ps), the
// product has float32 sums (GemmBF16), and a tile's y is rounded as it is written: no float32
// copy of x or of the columns.
template <typename S>
void Forward(const DeformableOffsetsGeometry& geo, int64_t features, const S* x, const S* offsets,
             const S* filters, S* y, const ParallelFor& parallel_for) {
  using T = typename Stored<S>::Compute;
  constexpr bool kBFloat16 = std::is_same<S, BFloat16>::value;
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t total_pixels = geo.batch * geo.out_height * geo.out_width;
  const int64_t width = geo.kernel_h * geo.kernel_w * geo.channels;  // K*C: one pixel's columns
  const int64_t row = kBFloat16 ? width + width % 2 : width;
  const Taps taps = MakeTaps(geo, geo.kernel_w * geo.channels);
  PackedPairs packed;
  if constexpr (kBFloat16) {
    PackPairs(
        width, features, [&](int64_t k, int64_t f) { return filters[k * features + f]; }, &packed);
  }
  const int64_t tiles = (total_pixels + kForwardTilePixels - 1) / kForwardTilePixels;
  const int64_t cost = kForwardTilePixels * (taps.count * (cg * 2 + 30) + width * features * 2);
  parallel_for(tiles, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<S> zeros(cg, S{0});
    const std::vector<T> ones(taps.count, T(1));
    std::vector<S> columns(kForwardTilePixels * row, S{0});
    std::vector<float> y_tile(kBFloat16 ? kForwardTilePixels * features : 0);
    std::vector<T> pixel_offsets(kBFloat16 ? 3 * taps.count : 0);
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t p_begin = tile * kForwardTilePixels;
        const int64_t p_count = std::min(kForwardTilePixels, total_pixels - p_begin);
        SampleColumns<kChannels>(geo, taps, x, offsets, ones.data(), zeros.data(), p_begin, p_count,
                                 row, &table, pixel_offsets.data(), columns.data());
        if constexpr (kBFloat16) {
          GemmBF16(p_count, columns.data(), row, packed, y_tile.data(), features);
          NarrowToBFloat16(y_tile.data(), p_count * features, y + p_begin * features);
        } else {
          Gemm<T>(p_count, features, width, {columns.data(), width, 1}, filters, features,
                  y + p_begin * features, features, /*accumulate=*/false);
        }
      }
    });
  });
}

// The backward for tensors stored as S, computing in T = Stored<S>::Compute. For S = bfloat16
// x and grad_y are read in place (widened a vector of channels at a time) and both matrix
// products take bfloat16 operands with float32 sums (GemmBF16: vdpbf16ps where built for it):
// the columns' gradient from grad_y and the filters, and grad_filters from the columns, rounded
// to bfloat16 as they are sampled (as a bfloat16 convolution's input is), and grad_y. The
// columns' gradient, the sampling arithmetic and grad_offsets stay float32; a pixel's offsets
// are widened and its grad_offsets rounded as they are touched (once each); grad_x (a scatter)
// and grad_filters are summed in float32 and rounded once at the end.
template <typename S>
void Backward(const DeformableOffsetsGeometry& geo, int64_t features, const S* x, const S* offsets,
              const S* filters, const S* grad_y, S* grad_x, S* grad_offsets, S* grad_filters,
              int64_t threads, const ParallelFor& parallel_for) {
  using T = typename Stored<S>::Compute;
  constexpr bool kBFloat16 = std::is_same<S, BFloat16>::value;
  const int64_t k_points = geo.kernel_h * geo.kernel_w;
  const int64_t cg = geo.channels / geo.deformable_groups;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t in_pixels = geo.in_height * geo.in_width;
  const int64_t out_pixels = geo.out_height * geo.out_width;
  const int64_t filters_size = k_points * geo.channels * features;
  const Taps taps = MakeTaps(geo, geo.kernel_w * geo.channels);
  const std::vector<GroupBlock<S>> blocks =
      MakeGroupBlocks(geo, GroupsPerBlock(geo, threads), features, filters);
  const int64_t block_count = blocks.size();
  const int64_t max_width = k_points * blocks[0].channels;  // the first block is the widest
  const int64_t cost = out_pixels * max_width * (6 + 40 / cg + features * 4);
  // bfloat16: each block's transposed filters [F, width] packed by pairs of rows for GemmBF16;
  // grad_y tiles copied to rows of even length when F is odd (GemmBF16 reads pairs).
  std::vector<PackedPairs> packed_filters(kBFloat16 ? block_count : 0);
  if constexpr (kBFloat16) {
    for (int64_t i = 0; i < block_count; ++i) {
      const int64_t width = k_points * blocks[i].channels;
      PackPairs(
          features, width,
          [&](int64_t f, int64_t j) { return blocks[i].transposed_filters[f * width + j]; },
          &packed_filters[i]);
    }
  }
  const int64_t grad_row = features + features % 2;
  FloatBuffer grad_x32;
  T* grad_x_sum;  // grad_x's sums: grad_x itself, or float32 for bfloat16
  if constexpr (kBFloat16) {
    grad_x32 = NewFloatBuffer(geo.batch * image_size);
    grad_x_sum = grad_x32.get();
  } else {
    grad_x_sum = grad_x;
  }

  std::mutex sums_mutex;
  std::vector<std::pair<int64_t, std::vector<T>>> sums;  // (range begin, its grad_filters)
  parallel_for(geo.batch * block_count, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(taps.count);
    const std::vector<S> zeros(cg, S{0});
    const std::vector<T> ones(taps.count, T(1));
    std::vector<T> sinks(4 * cg), sum(filters_size, T(0));
    std::vector<T> grad_columns(kBackwardTilePixels * max_width);
    std::vector<S> columns(kBackwardTilePixels * max_width);
    std::vector<T> pixel_offsets(kBFloat16 ? 3 * taps.count : 0), pixel_grad(pixel_offsets.size());
    std::vector<BFloat16> column_pairs(kBFloat16 ? (kBackwardTilePixels + 1) / 2 * 2 * max_width
                                                 : 0);
    std::vector<BFloat16> even_grad_tile(
        kBFloat16 && features % 2 ? kBackwardTilePixels * grad_row : 0, BFloat16{0});
    PackedPairs packed_grad_tile;
    DispatchChannels(cg, [&](auto fixed_channels) {
      constexpr int kChannels = decltype(fixed_channels)::value;
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t n = unit / block_count;
        const GroupBlock<S>& block = blocks[unit % block_count];
        const int64_t width = k_points * block.channels;
        const int64_t q_begin = block.g_begin * k_points;
        const int64_t q_count = (block.g_end - block.g_begin) * k_points;
        const S* image = x + n * image_size;
        T* grad_image = grad_x_sum + n * image_size;
        for (int64_t p = 0; p < in_pixels; ++p) {
          std::fill_n(grad_image + p * geo.channels + block.g_begin * cg, block.channels, T(0));
        }
        for (int64_t p_begin = 0; p_begin < out_pixels; p_begin += kBackwardTilePixels) {
          const int64_t p_count = std::min(kBackwardTilePixels, out_pixels - p_begin);
          const S* grad_tile = grad_y + (n * out_pixels + p_begin) * features;
          if constexpr (kBFloat16) {
            PairedRows grad_rows{grad_tile, features, 2};
            if (features % 2) {
              for (int64_t p = 0; p < p_count; ++p) {
                std::copy_n(grad_tile + p * features, features, &even_grad_tile[p * grad_row]);
              }
              grad_rows = {even_grad_tile.data(), grad_row, 2};
            }
            GemmBF16(p_count, grad_rows, packed_filters[unit % block_count], grad_columns.data(),
                     width);
          } else {
            Gemm<T>(p_count, width, features, {grad_tile, features, 1},
                    block.transposed_filters.data(), width, grad_columns.data(), width,
                    /*accumulate=*/false);
          }
          for (int64_t p = p_begin; p < p_begin + p_count; ++p) {
            const int64_t ho = p / geo.out_width, wo = p % geo.out_width;
            const int64_t pixel_index = n * out_pixels + p;
            const T* off_pixel;
            T* grad_off_pixel;
            if constexpr (kBFloat16) {
              WidenBFloat16(offsets + pixel_index * 3 * taps.count, 3 * taps.count,
                            pixel_offsets.data());
              off_pixel = pixel_offsets.data();
              grad_off_pixel = pixel_grad.data();
            } else {
              off_pixel = offsets + pixel_index * 3 * taps.count;
              grad_off_pixel = grad_offsets + pixel_index * 3 * taps.count;
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
            if constexpr (kBFloat16) {  // this unit's taps of the dx, dy and mask blocks
              for (int64_t part = 0; part < 3; ++part) {
                const int64_t first = part * taps.count + q_begin;
                NarrowToBFloat16(pixel_grad.data() + first, q_count,
                                 grad_offsets + pixel_index * 3 * taps.count + first);
              }
            }
          }
          // The block's rows of grad_filters, [channels, F] for each kernel point k:
          // columns^T . grad_tile, the reduction over the tile's pixels.
          if constexpr (kBFloat16) {
            // Pixels are the reduction: the columns and grad_y go by pairs of pixels.
            InterleaveRowPairs(columns.data(), p_count, width, column_pairs.data());
            PackPairs(
                p_count, features,
                [&](int64_t p, int64_t f) { return grad_tile[p * features + f]; },
                &packed_grad_tile);
            for (int64_t k = 0; k < k_points; ++k) {
              GemmBF16(block.channels,
                       PairedRows{column_pairs.data() + 2 * k * block.channels, 2, 2 * width},
                       packed_grad_tile,
                       sum.data() + (k * geo.channels + block.g_begin * cg) * features, features,
                       /*accumulate=*/true);
            }
          } else {
            for (int64_t k = 0; k < k_points; ++k) {
              Gemm<T>(block.channels, features, p_count,
                      {columns.data() + k * block.channels, 1, width}, grad_tile, features,
                      sum.data() + (k * geo.channels + block.g_begin * cg) * features, features,
                      /*accumulate=*/true);
            }
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
  std::vector<T> total(filters_size, T(0));
  for (const auto& range_sum : sums) {
    for (int64_t i = 0; i < filters_size; ++i) total[i] += range_sum.second[i];
  }
  for (int64_t i = 0; i < filters_size; ++i) Stored<S>::Put(grad_filters + i, total[i]);
  if constexpr (kBFloat16) NarrowAll(grad_x32.get(), geo.batch * image_size, grad_x, parallel_for);
}

}  // namespace

template <typename T>
void DeformConv2DForward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                         const T* offsets, const T* filters, T* y,
                         const ParallelFor& parallel_for) {
  Forward(geo, features, x, offsets, filters, y, parallel_for);
}

template <typename T>
void DeformConv2DBackward(const DeformableOffsetsGeometry& geo, int64_t features, const T* x,
                          const T* offsets, const T* filters, const T* grad_y, T* grad_x,
                          T* grad_offsets, T* grad_filters, int64_t threads,
                          const ParallelFor& parallel_for) {
  Backward(geo, features, x, offsets, filters, grad_y, grad_x, grad_offsets, grad_filters, threads,
           parallel_for);
}

#define EDVR_INSTANTIATE(T)                                                                  \
  template void DeformConv2DForward<T>(const DeformableOffsetsGeometry&, int64_t, const T*,  \
                                       const T*, const T*, T*, const ParallelFor&);          \
  template void DeformConv2DBackward<T>(const DeformableOffsetsGeometry&, int64_t, const T*, \
                                        const T*, const T*, const T*, T*, T*, T*, int64_t,   \
                                        const ParallelFor&);
EDVR_INSTANTIATE(float)
EDVR_INSTANTIATE(double)
EDVR_INSTANTIATE(BFloat16)
#undef EDVR_INSTANTIATE

}  // namespace edvr
