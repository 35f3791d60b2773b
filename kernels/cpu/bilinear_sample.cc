// CPU kernels of bilinear_sample: see bilinear_sample.h.
#include "bilinear_sample.h"

#include <algorithm>
#include <vector>

#include "bilinear.h"

namespace edvr {

namespace {
constexpr int64_t kChannelBlock = 16;
}  // namespace

template <typename T>
void BilinearSampleForward(const BilinearSampleGeometry& geo, const T* x, const T* coords, T* y,
                           const ParallelFor& parallel_for) {
  const int64_t image_size = geo.in_height * geo.in_width * geo.channels;
  parallel_for(geo.batch * geo.points, geo.channels * 3 + 60, [&](int64_t begin, int64_t end) {
    CornerScratch<T> scratch(geo.channels);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / geo.points;
      const T* xy = coords + unit * 2;
      const BilinearPoint<T> p =
          LocateBilinear(xy[1], xy[0], geo.in_height, geo.in_width, geo.channels);
      SampleChannels<0>(x + n * image_size, p, T(1), geo.channels, scratch, y + unit * geo.channels);
    }
  });
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
  const int64_t cost = geo.points * (kChannelBlock * 14 + 80);
  parallel_for(geo.batch * blocks, cost, [&](int64_t begin, int64_t end) {
    CornerScratch<T> scratch(kChannelBlock);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / blocks, block = unit % blocks;
      const int64_t c_begin = block * kChannelBlock;
      const int64_t c_count = std::min(kChannelBlock, geo.channels - c_begin);
      const T* image = x + n * image_size + c_begin;
      T* grad_image = grad_x + n * image_size + c_begin;
      for (int64_t q = 0; q < pixels; ++q) std::fill_n(grad_image + q * geo.channels, c_count, T(0));
      T* part = partial.data() + (block * geo.batch + n) * geo.points * 2;
      for (int64_t point = 0; point < geo.points; ++point) {
        const int64_t row = n * geo.points + point;
        const T* xy = coords + row * 2;
        const BilinearPoint<T> p =
            LocateBilinear(xy[1], xy[0], geo.in_height, geo.in_width, geo.channels);
        const PointGradient<T> pg = AccumulateChannelGradients<0>(
            image, p, T(1), grad_y + row * geo.channels + c_begin, c_count, scratch, grad_image);
        part[point * 2] = pg.d_px;
        part[point * 2 + 1] = pg.d_py;
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

template void BilinearSampleForward<float>(const BilinearSampleGeometry&, const float*,
                                           const float*, float*, const ParallelFor&);
template void BilinearSampleForward<double>(const BilinearSampleGeometry&, const double*,
                                            const double*, double*, const ParallelFor&);
template void BilinearSampleBackward<float>(const BilinearSampleGeometry&, const float*,
                                            const float*, const float*, float*, float*,
                                            const ParallelFor&);
template void BilinearSampleBackward<double>(const BilinearSampleGeometry&, const double*,
                                             const double*, const double*, double*, double*,
                                             const ParallelFor&);

}  // namespace edvr
