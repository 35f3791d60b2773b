// Zero-outside bilinear sampling in NHWC: the arithmetic that deformable_offsets
// and bilinear_sample share, forward and backward.
//
// Rule (SPEC section 2): the value at (py, px) is 0 when py <= -1, py >= H,
// px <= -1 or px >= W; otherwise the four corners of the cell containing the
// point are weighted bilinearly, each counted only if it lies inside the image.
// NaN positions give NaN.
#ifndef EDVR_KERNELS_CPU_BILINEAR_H_
#define EDVR_KERNELS_CPU_BILINEAR_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace edvr {

// 32-byte vectors through GCC/Clang vector extensions (no intrinsics): 8 floats
// or 4 doubles, compiled to AVX where the target has it and to SSE pairs otherwise.
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int kWidth = 32 / sizeof(T);
  static type Load(const T* p) {
    type v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(T* p, type v) { std::memcpy(p, &v, sizeof(v)); }
  static T Sum(type v) {
    T s = 0;
    for (int i = 0; i < kWidth; ++i) s += v[i];
    return s;
  }
};

// True when a compile-time channel count is a whole number of vectors.
template <int kChannels, typename T>
constexpr bool kWholeVectors = kChannels > 0 && kChannels % Vec<T>::kWidth == 0;

// Integer lanes of the same width as T, for indices and comparison masks.
template <typename T>
struct LaneInt;
template <>
struct LaneInt<float> {
  using type = int32_t;
};
template <>
struct LaneInt<double> {
  using type = int64_t;
};

// Many sampling points located at once, as a structure of arrays: for point q,
// the four corner weights (0 outside the image; NaN for a NaN position), the
// fractional position (ly, lx) and the corners' element offsets from the image
// base (-1 outside). Filled a vector of points at a time by Locate().
template <typename T>
class PointTable {
 public:
  using Index = typename LaneInt<T>::type;
  static constexpr int kWidth = Vec<T>::kWidth;

  // Room for `points` points, rounded up to whole vectors.
  explicit PointTable(int64_t points)
      : size_((points + kWidth - 1) / kWidth * kWidth), py_(size_), px_(size_), ly_(size_),
        lx_(size_) {
    for (int c = 0; c < 4; ++c) {
      weight_[c].resize(size_);
      index_[c].resize(size_);
    }
  }
  // Positions to locate; entries past the point count are ignored.
  T* py() { return py_.data(); }
  T* px() { return px_.data(); }

  // Locates points [0, count) of an image of height x width pixels, pixel_stride
  // elements apart. Needs height * width * pixel_stride < 2^31 for float.
  void Locate(int64_t count, int64_t height, int64_t width, int64_t pixel_stride) {
    for (int64_t q = 0; q < count; q += kWidth) LocateVector(q, height, width, pixel_stride);
  }

  T weight(int corner, int64_t q) const { return weight_[corner][q]; }
  T ly(int64_t q) const { return ly_[q]; }
  T lx(int64_t q) const { return lx_[q]; }
  Index index(int corner, int64_t q) const { return index_[corner][q]; }

 private:
  void LocateVector(int64_t q, int64_t height, int64_t width, int64_t pixel_stride) {
    using V = Vec<T>;
    using VT = typename V::type;
    typedef Index VI __attribute__((vector_size(32)));
    const VT zero = {}, one = zero + T(1), minus_one = zero - T(1);
    const VT nan = zero + std::numeric_limits<T>::quiet_NaN();
    const VT py = V::Load(py_.data() + q), px = V::Load(px_.data() + q);
    const VI in_range = (py > minus_one) & (py < zero + T(height)) & (px > minus_one) &
                        (px < zero + T(width));
    const VI is_nan = (py != py) | (px != px);
    // Out-of-range points are moved to 0 first: no huge or NaN value is converted to int.
    const VT sy = in_range ? py : zero, sx = in_range ? px : zero;
    const VI ty = __builtin_convertvector(sy, VI), tx = __builtin_convertvector(sx, VI);
    // floor() by truncation; a true comparison is -1, so this subtracts 1 below zero.
    const VI y0 = ty + (sy < __builtin_convertvector(ty, VT));
    const VI x0 = tx + (sx < __builtin_convertvector(tx, VT));
    const VT ly = is_nan ? nan : sy - __builtin_convertvector(y0, VT);
    const VT lx = is_nan ? nan : sx - __builtin_convertvector(x0, VT);
    const VT hy = one - ly, hx = one - lx;
    const VI none = {}, minus = none - 1;
    const VI y0_in = in_range & (y0 >= none), y1_in = in_range & (y0 + 1 < none + Index(height));
    const VI x0_in = x0 >= none, x1_in = x0 + 1 < none + Index(width);
    const VI inside[4] = {y0_in & x0_in, y0_in & x1_in, y1_in & x0_in, y1_in & x1_in};
    const VT weight[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
    const VI base = (y0 * Index(width) + x0) * Index(pixel_stride);
    const Index step[4] = {0, Index(pixel_stride), Index(width * pixel_stride),
                           Index((width + 1) * pixel_stride)};
    for (int c = 0; c < 4; ++c) {
      // NaN weights survive for NaN points (whose corners all read zeros), so NaN reaches y.
      V::Store(weight_[c].data() + q, inside[c] ? weight[c] : (is_nan ? nan : zero));
      const VI index = inside[c] ? base + step[c] : minus;
      std::memcpy(index_[c].data() + q, &index, sizeof(index));
    }
    V::Store(ly_.data() + q, ly);
    V::Store(lx_.data() + q, lx);
  }

  int64_t size_;
  std::vector<T> py_, px_, ly_, lx_;
  std::vector<T> weight_[4];
  std::vector<Index> index_[4];
};

// out[c] = scale * bilinear(image[..., c]) at point q of the table.
template <int kChannels, typename T>
inline void SampleTableChannels(const T* image, const PointTable<T>& t, int64_t q, T scale,
                                int64_t channels, const T* zeros, T* __restrict__ out) {
  if (kChannels) channels = kChannels;
  const T* v[4];
  for (int c = 0; c < 4; ++c) v[c] = t.index(c, q) >= 0 ? image + t.index(c, q) : zeros;
  const T w00 = t.weight(0, q), w01 = t.weight(1, q), w10 = t.weight(2, q), w11 = t.weight(3, q);
  if constexpr (kWholeVectors<kChannels, T>) {
    using V = Vec<T>;
    for (int c = 0; c < kChannels; c += V::kWidth) {
      V::Store(out + c, scale * (w00 * V::Load(v[0] + c) + w01 * V::Load(v[1] + c) +
                                 w10 * V::Load(v[2] + c) + w11 * V::Load(v[3] + c)));
    }
    return;
  }
  for (int64_t c = 0; c < channels; ++c) {
    out[c] = scale * (w00 * v[0][c] + w01 * v[1][c] + w10 * v[2][c] + w11 * v[3][c]);
  }
}

template <typename T>
struct PointGradient {
  T d_py, d_px, d_scale;
};

// Gradients at point q of the table of y[c] = scale * bilinear(image[..., c]):
// adds scale * weight * grad_y[c] to each inside corner of grad_image (outside
// corners write to `sinks`, 4 * channels values) and returns d/dpy, d/dpx
// (each times scale) and d/dscale of sum_c grad_y[c] * y[c].
template <int kChannels, typename T>
inline PointGradient<T> AccumulateTableGradients(const T* image, const PointTable<T>& t,
                                                 int64_t q, T scale,
                                                 const T* __restrict__ grad_y, int64_t channels,
                                                 const T* zeros, T* sinks, T* grad_image) {
  if (kChannels) channels = kChannels;
  const T* v[4];
  T* g[4];
  for (int c = 0; c < 4; ++c) {
    const bool inside = t.index(c, q) >= 0;
    v[c] = inside ? image + t.index(c, q) : zeros;
    g[c] = inside ? grad_image + t.index(c, q) : sinks + c * channels;
  }
  const T w00 = t.weight(0, q), w01 = t.weight(1, q), w10 = t.weight(2, q), w11 = t.weight(3, q);
  const T ly = t.ly(q), lx = t.lx(q), hy = T(1) - ly, hx = T(1) - lx;
  const T s00 = scale * w00, s01 = scale * w01, s10 = scale * w10, s11 = scale * w11;
  const T* __restrict__ a = v[0];
  const T* __restrict__ b = v[1];
  const T* __restrict__ d = v[2];
  const T* __restrict__ e = v[3];
  T* __restrict__ ga = g[0];
  T* __restrict__ gb = g[1];
  T* __restrict__ gd = g[2];
  T* __restrict__ ge = g[3];
  if constexpr (kWholeVectors<kChannels, T>) {
    using V = Vec<T>;
    typename V::type value = {}, dy = {}, dx = {};
    for (int c = 0; c < kChannels; c += V::kWidth) {
      const typename V::type gv = V::Load(grad_y + c);
      const typename V::type va = V::Load(a + c), vb = V::Load(b + c);
      const typename V::type vd = V::Load(d + c), ve = V::Load(e + c);
      value += gv * (w00 * va + w01 * vb + w10 * vd + w11 * ve);
      dy += gv * (hx * (vd - va) + lx * (ve - vb));
      dx += gv * (hy * (vb - va) + ly * (ve - vd));
      V::Store(ga + c, V::Load(ga + c) + s00 * gv);
      V::Store(gb + c, V::Load(gb + c) + s01 * gv);
      V::Store(gd + c, V::Load(gd + c) + s10 * gv);
      V::Store(ge + c, V::Load(ge + c) + s11 * gv);
    }
    return PointGradient<T>{scale * V::Sum(dy), scale * V::Sum(dx), V::Sum(value)};
  }
  T sum_value = 0, sum_dy = 0, sum_dx = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const T gv = grad_y[c];
    const T va = a[c], vb = b[c], vd = d[c], ve = e[c];
    sum_value += gv * (w00 * va + w01 * vb + w10 * vd + w11 * ve);
    sum_dy += gv * (hx * (vd - va) + lx * (ve - vb));
    sum_dx += gv * (hy * (vb - va) + ly * (ve - vd));
    ga[c] += s00 * gv;
    gb[c] += s01 * gv;
    gd[c] += s10 * gv;
    ge[c] += s11 * gv;
  }
  return PointGradient<T>{scale * sum_dy, scale * sum_dx, sum_value};
}

// Calls body(std::integral_constant<int, N>) with N = channels for the common
// group widths, else N = 0, so that the channel loops above are fully unrolled
// straight-line vector code where they can be.
template <typename Body>
inline void DispatchChannels(int64_t channels, Body&& body) {
  switch (channels) {
    case 4: return body(std::integral_constant<int, 4>());
    case 8: return body(std::integral_constant<int, 8>());
    case 16: return body(std::integral_constant<int, 16>());
    case 32: return body(std::integral_constant<int, 32>());
    case 64: return body(std::integral_constant<int, 64>());
    default: return body(std::integral_constant<int, 0>());
  }
}

}  // namespace edvr

#endif  // EDVR_KERNELS_CPU_BILINEAR_H_
