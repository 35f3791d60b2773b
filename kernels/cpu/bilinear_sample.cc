// CPU kernels of bilinear_sample: see bilinear_sample.h.
#include "bilinear_sample.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "bilinear.h"

namespace edvr {

namespace {
constexpr int64_t kChannelBlock = 16;  // channels per backward work unit
constexpr int64_t kPointBlock = 64;    // points located together

// Locates points [first, first + count) of batch row `n` (count <= kPointBlock).
// Coordinates stored as S (bfloat16 for T = float) are widened here.
template <typename T, typename S>
void LocatePoints(const BilinearSampleGeometry& geo, const S* coords, int64_t first, int64_t count,
                  PointTable<T>* table) {
  for (int64_t q = 0; q < count; ++q) {
    table->px()[q] = Stored<S>::Get(coords + (first + q) * 2);
    table->py()[q] = Stored<S>::Get(coords + (first + q) * 2 + 1);
  }
  table->Locate(count, geo.in_height, geo.in_width, geo.channels);
}

// The per-point arrays that Sample/AccumulateTablePoints take, for a block of
// kPointBlock points of `channels` channels each: scale 1, every point read at the
// image's own channels, point q written at q * channels.
template <typename T>
struct BlockLayout {
  explicit BlockLayout(int64_t channels) : ones(kPointBlock, T(1)), no_offsets(kPointBlock, 0) {
    for (int64_t q = 0; q < kPointBlock; ++q) point_offsets.push_back(q * channels);
  }
  std::vector<T> ones;
  std::vector<int64_t> no_offsets, point_offsets;
};

// The forward for tensors stored as S, computing in T = Stored<S>::Compute: bfloat16 x is read
// and y written in place, a vector of channels at a time; a block's coordinates are widened
// as they are located.
template <typename S>
void Forward(const BilinearSampleGeometry& geo, const S* x, const S* coords, S* y,
             const ParallelFor& parallel_for) {
  using T = typename Stored<S>::Compute;
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t blocks = (geo.points + kPointBlock - 1) / kPointBlock;
  const int64_t cost = kPointBlock * (geo.channels * 2 + 30);
  parallel_for(geo.batch * blocks, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(kPointBlock);
    const BlockLayout<T> layout(geo.channels);
    const std::vector<S> zeros(geo.channels, S{0});
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / blocks, first = n * geo.points + unit % blocks * kPointBlock;
      const int64_t count = std::min(kPointBlock, (n + 1) * geo.points - first);
      LocatePoints(geo, coords, first, count, &table);
      SampleTablePoints<0>(x + n * image_size, table, count, layout.ones.data(),
                           layout.no_offsets.data(), layout.point_offsets.data(), geo.channels,
                           zeros.data(), y + first * geo.channels);
    }
  });
}
}  // namespace

template <typename T>
void BilinearSampleForward(const BilinearSampleGeometry& geo, const T* x, const T* coords, T* y,
                           const ParallelFor& parallel_for) {
  Forward(geo, x, coords, y, parallel_for);
}

template <typename T>
void BilinearSampleBackward(const BilinearSampleGeometry& geo, const T* x, const T* coords,
                            const T* grad_y, T* grad_x, T* grad_coords,
                            const ParallelFor& parallel_for) {
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  const int64_t pixels = geo.in_height * geo.in_width;
  const int64_t blocks = (geo.channels + kChannelBlock - 1) / kChannelBlock;
  // partial[block][n][p][2]: the coordinate gradient from one channel block.
  std::vector<T> partial(blocks * geo.batch * geo.points * 2);
  const int64_t cost = geo.points * (kChannelBlock * 6 + 40);
  parallel_for(geo.batch * blocks, cost, [&](int64_t begin, int64_t end) {
    PointTable<T> table(kPointBlock);
    const BlockLayout<T> layout(geo.channels);
    const std::vector<T> zeros(kChannelBlock, T(0));
    std::vector<T> sinks(4 * kChannelBlock), d_px(kPointBlock), d_py(kPointBlock),
        d_scale(kPointBlock);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / blocks, block = unit % blocks;
      const int64_t c_begin = block * kChannelBlock;
      const int64_t c_count = std::min(kChannelBlock, geo.channels - c_begin);
      const T* image = x + n * image_size + c_begin;
      T* grad_image = grad_x + n * image_size + c_begin;
      for (int64_t p = 0; p < pixels; ++p)
        std::fill_n(grad_image + p * geo.channels, c_count, T(0));
      T* part = partial.data() + (block * geo.batch + n) * geo.points * 2;
      for (int64_t start = 0; start < geo.points; start += kPointBlock) {
        const int64_t count = std::min(kPointBlock, geo.points - start);
        LocatePoints(geo, coords, n * geo.points + start, count, &table);
        AccumulateTablePoints<0>(image, table, count, layout.ones.data(), layout.no_offsets.data(),
                                 grad_y + (n * geo.points + start) * geo.channels + c_begin,
                                 layout.point_offsets.data(), c_count, zeros.data(), sinks.data(),
                                 grad_image, d_px.data(), d_py.data(), d_scale.data());
        for (int64_t q = 0; q < count; ++q) {
          part[(start + q) * 2] = d_px[q];
          part[(start + q) * 2 + 1] = d_py[q];
        }
      }
    }
  });
  const int64_t values = geo.batch * geo.points * 2;
  parallel_for(values, blocks * 2, [&](int64_t begin, int64_t end) {
    for (int64_t v = begin; v < end; ++v) {
      T sum = 0;
      for (int64_t block = 0; block < blocks; ++block) sum += partial[block * values + v];
      grad_coords[v] = sum;
    }
  });
}

template <>
void BilinearSampleBackward<BFloat16>(const BilinearSampleGeometry& geo, const BFloat16* x,
                                      const BFloat16* coords, const BFloat16* grad_y,
                                      BFloat16* grad_x, BFloat16* grad_coords,
                                      const ParallelFor& parallel_for) {
  const int64_t x_size = geo.batch * geo.in_height * geo.in_width * geo.channels;
  const int64_t coords_size = geo.batch * geo.points * 2;
  InFloat32({{x, x_size}, {coords, coords_size}, {grad_y, geo.batch * geo.points * geo.channels}},
            {{grad_x, x_size}, {grad_coords, coords_size}}, parallel_for,
            [&](const float* const* in, float* const* out) {
              BilinearSampleBackward<float>(geo, in[0], in[1], in[2], out[0], out[1], parallel_for);
            });
}

template void BilinearSampleForward<BFloat16>(const BilinearSampleGeometry&, const BFloat16*,
                                              const BFloat16*, BFloat16*, const ParallelFor&);
#define EDVR_INSTANTIATE(T)                                                                     \
  template void BilinearSampleForward<T>(const BilinearSampleGeometry&, const T*, const T*, T*, \
                                         const ParallelFor&);                                   \
  template void BilinearSampleBackward<T>(const BilinearSampleGeometry&, const T*, const T*,    \
                                          const T*, T*, T*, const ParallelFor&);
EDVR_INSTANTIATE(float)
EDVR_INSTANTIATE(double)
#undef EDVR_INSTANTIATE

}  // namespace edvr
