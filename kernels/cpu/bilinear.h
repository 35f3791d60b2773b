// Zero-outside bilinear sampling in NHWC: the arithmetic that deformable_offsets
// and bilinear_sample share, forward and backward.
//
// Rule (docs/ops.md): the value at (py, px) is 0 when py <= -1, py >= H,
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

#include "bfloat16.h"
#include "vec.h"

namespace edvr {

// Tensors as stored, S, against the type the kernels compute in, Stored<S>::Compute: S itself,
// or float for bfloat16, widened on load (exactly) and rounded to nearest even on store, a
// vector of channels at a time in the sampling loops, so that no bfloat16 tensor needs a
// widened copy.
template <typename S>
struct Stored {
  using Compute = S;
  using V = Vec<S>;
  static typename V::type Load(const S* p) { return V::Load(p); }
  static void Store(S* p, typename V::type v) { V::Store(p, v); }
  static S Get(const S* p) { return *p; }
  static void Put(S* p, S v) { *p = v; }
};
template <>
struct Stored<BFloat16> {
  using Compute = float;
  using V = Vec<float>;
  static V::type Load(const BFloat16* p) {
    V::type v;
    WidenLanes<V::kWidth>(p, &v);
    return v;
  }
  static void Store(BFloat16* p, V::type v) { NarrowLanes<V::kWidth>(v, p); }
  static float Get(const BFloat16* p) { return ToFloat(*p); }
  static void Put(BFloat16* p, float v) { *p = ToBFloat16(v); }
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

  const T* weights(int corner) const { return weight_[corner].data(); }
  const Index* indices(int corner) const { return index_[corner].data(); }
  const T* lys() const { return ly_.data(); }
  const T* lxs() const { return lx_.data(); }

 private:
  void LocateVector(int64_t q, int64_t height, int64_t width, int64_t pixel_stride) {
    using V = Vec<T>;
    using VT = typename V::type;
    typedef Index VI __attribute__((vector_size(32)));
    const VT zero = {}, one = zero + T(1), minus_one = zero - T(1);
    const VT nan = zero + std::numeric_limits<T>::quiet_NaN();
    const VT py = V::Load(py_.data() + q), px = V::Load(px_.data() + q);
    const VI in_range =
        (py > minus_one) & (py < zero + T(height)) & (px > minus_one) & (px < zero + T(width));
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

// The four corner addresses of point q, corner c at base + index[c][q]; a corner
// outside the image (index -1) is at outside + c * outside_step instead. Most points
// have all four corners inside: that case takes one well-predicted branch.
template <typename P, typename Index>
inline void CornerAddresses(P* base, const Index* const* index, int64_t q, P* outside,
                            int64_t outside_step, P* corner[4]) {
  const Index i0 = index[0][q], i1 = index[1][q], i2 = index[2][q], i3 = index[3][q];
  if ((i0 | i1 | i2 | i3) >= 0) {
    corner[0] = base + i0;
    corner[1] = base + i1;
    corner[2] = base + i2;
    corner[3] = base + i3;
    return;
  }
  corner[0] = i0 >= 0 ? base + i0 : outside;
  corner[1] = i1 >= 0 ? base + i1 : outside + outside_step;
  corner[2] = i2 >= 0 ? base + i2 : outside + 2 * outside_step;
  corner[3] = i3 >= 0 ? base + i3 : outside + 3 * outside_step;
}

// out[c] = scale[q] * bilinear(image[..., c]) at points [0, count) of the table,
// point q read from image + channel_offset[q] and written to out + out_offset[q]. image
// and out may be stored as bfloat16 (Stored<>); the arithmetic is in T.
template <int kChannels, typename T, typename In, typename Out>
inline void SampleTablePoints(const In* image, const PointTable<T>& t, int64_t count,
                              const T* scale, const int64_t* channel_offset,
                              const int64_t* out_offset, int64_t channels, const In* zeros,
                              Out* out) {
  static_assert(std::is_same<typename Stored<In>::Compute, T>::value &&
                    std::is_same<typename Stored<Out>::Compute, T>::value,
                "image and out must be stored as T or as bfloat16 for float");
  if (kChannels) channels = kChannels;
  using Index = typename PointTable<T>::Index;
  using Load = Stored<In>;
  const Index* const index[4] = {t.indices(0), t.indices(1), t.indices(2), t.indices(3)};
  const T* __restrict__ w0 = t.weights(0), * __restrict__ w1 = t.weights(1);
  const T* __restrict__ w2 = t.weights(2), * __restrict__ w3 = t.weights(3);
  for (int64_t q = 0; q < count; ++q) {
    const In* v[4];
    CornerAddresses(image + channel_offset[q], index, q, zeros, 0, v);
    const In* __restrict__ a = v[0], * __restrict__ b = v[1], * __restrict__ d = v[2], * __restrict__ e = v[3];
    const T s = scale[q];
    const T s00 = s * w0[q], s01 = s * w1[q], s10 = s * w2[q], s11 = s * w3[q];
    Out* __restrict__ o = out + out_offset[q];
    if constexpr (kWholeVectors<kChannels, T>) {
      for (int c = 0; c < kChannels; c += Vec<T>::kWidth) {
        Stored<Out>::Store(o + c, s00 * Load::Load(a + c) + s01 * Load::Load(b + c) +
                                      s10 * Load::Load(d + c) + s11 * Load::Load(e + c));
      }
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        Stored<Out>::Put(o + c, s00 * Load::Get(a + c) + s01 * Load::Get(b + c) +
                                    s10 * Load::Get(d + c) + s11 * Load::Get(e + c));
      }
    }
  }
}

// The lane sums of three vectors, {sum(a), sum(b), sum(c)}, by pairwise adds.
template <typename T>
inline void Sum3(typename Vec<T>::type a, typename Vec<T>::type b, typename Vec<T>::type c, T* sa,
                 T* sb, T* sc) {
  using VT = typename Vec<T>::type;
  if constexpr (Vec<T>::kWidth == 8) {
    typedef typename LaneInt<T>::type VI __attribute__((vector_size(32)));
    // hadd(u, v) = [u0+u1, u2+u3, v0+v1, v2+v3, u4+u5, u6+u7, v4+v5, v6+v7]
    auto hadd = [](VT u, VT v) {
      const VI even = {0, 2, 8, 10, 4, 6, 12, 14}, odd = {1, 3, 9, 11, 5, 7, 13, 15};
      return __builtin_shuffle(u, v, even) + __builtin_shuffle(u, v, odd);
    };
    const VT zero = {};
    const VT r = hadd(hadd(a, b), hadd(c, zero));  // [a, b, c, 0] partial sums in each half
    *sa = r[0] + r[4];
    *sb = r[1] + r[5];
    *sc = r[2] + r[6];
  } else {
    *sa = Vec<T>::Sum(a);
    *sb = Vec<T>::Sum(b);
    *sc = Vec<T>::Sum(c);
  }
}

// Backward of SampleTablePoints for points [0, count): adds scale * weight * grad_out
// to each inside corner of grad_image + channel_offset[q] (outside corners write to
// `sinks`, 4 * channels values) and writes, per point, d/dpx and d/dpy (each times
// scale) and d/dscale of sum_c grad_out[c] * out[c]. With kStoreSamples it also
// writes the forward's out (which it computes anyway) to samples + out_offset[q].
// image, grad_out and samples may be stored as bfloat16 (Stored<>); the arithmetic and
// grad_image are in T.
template <int kChannels, bool kStoreSamples = false, typename T, typename In, typename G,
          typename Sample = T>
inline void AccumulateTablePoints(const In* image, const PointTable<T>& t, int64_t count,
                                  const T* scale, const int64_t* channel_offset, const G* grad_out,
                                  const int64_t* out_offset, int64_t channels, const In* zeros,
                                  T* sinks, T* grad_image, T* d_px, T* d_py, T* d_scale,
                                  Sample* samples = nullptr) {
  if (kChannels) channels = kChannels;
  using Index = typename PointTable<T>::Index;
  using Load = Stored<In>;
  const Index* const index[4] = {t.indices(0), t.indices(1), t.indices(2), t.indices(3)};
  const T* __restrict__ w0 = t.weights(0), * __restrict__ w1 = t.weights(1);
  const T* __restrict__ w2 = t.weights(2), * __restrict__ w3 = t.weights(3);
  const T* __restrict__ lys = t.lys(), * __restrict__ lxs = t.lxs();
  for (int64_t q = 0; q < count; ++q) {
    const In* v[4];
    T* gv[4];
    CornerAddresses(image + channel_offset[q], index, q, zeros, 0, v);
    CornerAddresses(grad_image + channel_offset[q], index, q, sinks, channels, gv);
    const In* __restrict__ a = v[0], * __restrict__ b = v[1], * __restrict__ d = v[2], * __restrict__ e = v[3];
    T* __restrict__ ga = gv[0], * __restrict__ gb = gv[1], * __restrict__ gd = gv[2], * __restrict__ ge = gv[3];
    const T s = scale[q];
    const T w00 = w0[q], w01 = w1[q], w10 = w2[q], w11 = w3[q];
    const T ly = lys[q], lx = lxs[q], hy = T(1) - ly, hx = T(1) - lx;
    const T s00 = s * w00, s01 = s * w01, s10 = s * w10, s11 = s * w11;
    const G* __restrict__ g = grad_out + out_offset[q];
    T sum_value = 0, sum_dy = 0, sum_dx = 0;
    if constexpr (kWholeVectors<kChannels, T>) {
      using V = Vec<T>;
      typename V::type value = {}, dy = {}, dx = {};
      for (int c = 0; c < kChannels; c += V::kWidth) {
        const typename V::type gv = Stored<G>::Load(g + c);
        const typename V::type va = Load::Load(a + c), vb = Load::Load(b + c);
        const typename V::type vd = Load::Load(d + c), ve = Load::Load(e + c);
        const typename V::type sample = w00 * va + w01 * vb + w10 * vd + w11 * ve;
        if constexpr (kStoreSamples) Stored<Sample>::Store(samples + out_offset[q] + c, s * sample);
        value += gv * sample;
        dy += gv * (hx * (vd - va) + lx * (ve - vb));
        dx += gv * (hy * (vb - va) + ly * (ve - vd));
        V::Store(ga + c, V::Load(ga + c) + s00 * gv);
        V::Store(gb + c, V::Load(gb + c) + s01 * gv);
        V::Store(gd + c, V::Load(gd + c) + s10 * gv);
        V::Store(ge + c, V::Load(ge + c) + s11 * gv);
      }
      Sum3<T>(value, dy, dx, &sum_value, &sum_dy, &sum_dx);
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        const T gv = Stored<G>::Get(g + c);
        const T va = Load::Get(a + c), vb = Load::Get(b + c);
        const T vd = Load::Get(d + c), ve = Load::Get(e + c);
        const T sample = w00 * va + w01 * vb + w10 * vd + w11 * ve;
        if constexpr (kStoreSamples) Stored<Sample>::Put(samples + out_offset[q] + c, s * sample);
        sum_value += gv * sample;
        sum_dy += gv * (hx * (vd - va) + lx * (ve - vb));
        sum_dx += gv * (hy * (vb - va) + ly * (ve - vd));
        ga[c] += s00 * gv;
        gb[c] += s01 * gv;
        gd[c] += s10 * gv;
        ge[c] += s11 * gv;
      }
    }
    d_px[q] = s * sum_dx;
    d_py[q] = s * sum_dy;
    d_scale[q] = sum_value;
  }
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
