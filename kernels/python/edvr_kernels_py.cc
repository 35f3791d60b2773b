// edvr_kernels: the framework-free CPU kernels of kernels/cpu for NumPy arrays,
// through pybind11, without TensorFlow. Same shapes, geometry arguments and
// checks as the Python ops (ops/__init__.py, ops/_checks.py), float32 and float64
// (the instantiations in kernels/cpu/*.cc). Gradients are the kernels' backward
// passes: *_grad(grad, inputs...) returns the gradients of sum(grad * forward).
//
//   deformable_offsets(x [N,H,W,C], offsets [N,Ho,Wo,3GK], ksize, ...) -> [N, Ho*kh, Wo*kw, C]
//   deform_conv2d(x, offsets, filters [kh,kw,C,F], ...)                 -> [N, Ho, Wo, F]
//   bilinear_sample(x [N,H,W,C], coords [N,...,2] as (x, y))              -> [N, ..., C]
//
// The GIL is released while a kernel runs; work is split over `threads` std::threads
// (0: one per hardware thread).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/bilinear_sample.h"
#include "kernels/cpu/deform_conv2d.h"
#include "kernels/cpu/deformable_offsets.h"
#include "kernels/cpu/output_size.h"
#include "kernels/cpu/parallel.h"

namespace py = pybind11;

namespace edvr {
namespace {

using Shape = std::vector<int64_t>;

std::string Join(const Shape& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

Shape ShapeOf(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

int64_t Product(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

[[noreturn]] void Fail(const std::string& op, const std::string& message) {
  throw py::value_error(op + ": " + message);
}

int64_t Threads(int64_t threads) {
  if (threads < 0)
    throw py::value_error("threads must be >= 0 (0: all), got " + std::to_string(threads));
  return threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
}

// Splits [0, total) into up to `threads` contiguous ranges, one per std::thread
// (the calling thread runs the first), each of at least 10000 units of cost, the
// minimum of TensorFlow's Shard (so the op and this module split work alike; less
// would not pay for starting a thread). An exception in a range is rethrown here.
ParallelFor ThreadParallelFor(int64_t threads) {
  return [threads](int64_t total, int64_t cost_per_unit,
                   const std::function<void(int64_t, int64_t)>& work) {
    const int64_t min_cost_per_range = 10000;
    const int64_t by_cost =
        std::max<int64_t>(1, total * std::max<int64_t>(cost_per_unit, 1) / min_cost_per_range);
    const int64_t ranges = std::min({threads, total, by_cost});
    if (ranges <= 1) {
      if (total > 0) work(0, total);
      return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    auto run = [&](int64_t r) {
      try {
        work(total * r / ranges, total * (r + 1) / ranges);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int64_t r = 1; r < ranges; ++r) pool.emplace_back(run, r);
    run(0);
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  };
}

// `a` as a C-contiguous array of T (copied only if it is not contiguous); its dtype
// must be T, the dtype of x: no silent casts.
template <typename T>
py::array_t<T, py::array::c_style> Input(const std::string& op, const char* name,
                                         const py::array& a) {
  if (!a.dtype().is(py::dtype::of<T>())) {
    Fail(op, std::string(name) + " must have x's dtype " +
                 std::string(py::str(py::dtype::of<T>())) + ", got " +
                 std::string(py::str(a.dtype())));
  }
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// Calls body(T()) with T = x's dtype, float32 or float64.
template <typename Body>
auto DispatchDtype(const std::string& op, const py::array& x, Body&& body) {
  if (x.dtype().is(py::dtype::of<float>())) return body(float());
  if (x.dtype().is(py::dtype::of<double>())) return body(double());
  throw py::type_error(op + ": x must be float32 or float64, got " +
                       std::string(py::str(x.dtype())));
}

// The geometry arguments, checked as ops/_checks.geometry does.
struct GeometryArgs {
  Shape ksize, strides, pads, dilations;
  int64_t deformable_groups;
  bool modulated;
};

void CheckInts(const std::string& op, const char* what, const Shape& v, size_t length,
               int64_t minimum) {
  const bool ok = v.size() == length &&
                  std::all_of(v.begin(), v.end(), [&](int64_t e) { return e >= minimum; });
  if (!ok) {
    Fail(op, std::string(what) + " must be " + std::to_string(length) +
                 (minimum > 0 ? " positive" : " non-negative") + " integers, got " + Join(v));
  }
}

// Checks x [N, H, W, C] and offsets [N, Ho, Wo, 3*G*K] against the geometry, with the
// messages of ops/_checks.py; returns the kernels' geometry.
DeformableOffsetsGeometry CheckDeformableOffsets(const std::string& op, const GeometryArgs& g,
                                                 const py::array& x, const py::array& offsets) {
  CheckInts(op, "ksize", g.ksize, 2, 1);
  CheckInts(op, "strides", g.strides, 2, 1);
  CheckInts(op, "pads (top, bottom, left, right)", g.pads, 4, 0);
  CheckInts(op, "dilations", g.dilations, 2, 1);
  if (g.deformable_groups < 1) {
    Fail(op, "deformable_groups must be >= 1, got " + std::to_string(g.deformable_groups));
  }
  const Shape x_shape = ShapeOf(x), off_shape = ShapeOf(offsets);
  if (x_shape.size() != 4) Fail(op, "x must be rank 4 [N, H, W, C], got shape " + Join(x_shape));
  if (off_shape.size() != 4) {
    Fail(op, "offsets must be rank 4 [N, Ho, Wo, 3*G*K], got shape " + Join(off_shape));
  }
  const int64_t n = x_shape[0], h = x_shape[1], w = x_shape[2], c = x_shape[3];
  if (c % g.deformable_groups) {
    Fail(op, "x channels (" + std::to_string(c) + ") must be divisible by deformable_groups (" +
                 std::to_string(g.deformable_groups) + "); x has shape " + Join(x_shape));
  }
  if (h * w * c >= (int64_t(1) << 31)) {  // the kernels index one image with 32-bit lanes
    Fail(op, "x is too large: H*W*C must be < 2^31 per batch item, got shape " + Join(x_shape));
  }
  const int64_t ho = OutputSize(h, g.pads[0] + g.pads[1], g.ksize[0], g.dilations[0], g.strides[0]);
  const int64_t wo = OutputSize(w, g.pads[2] + g.pads[3], g.ksize[1], g.dilations[1], g.strides[1]);
  if (ho < 1 || wo < 1) {
    Fail(op, "kernel (" + std::to_string(g.ksize[0]) + "x" + std::to_string(g.ksize[1]) +
                 " with dilation " + std::to_string(g.dilations[0]) + "x" +
                 std::to_string(g.dilations[1]) +
                 ") is larger than the padded input of x (x shape " + Join(x_shape) + ", pads " +
                 Join(g.pads) + ")");
  }
  const Shape expected = {n, ho, wo, 3 * g.deformable_groups * g.ksize[0] * g.ksize[1]};
  if (off_shape != expected) {
    Fail(op, "offsets must have shape [N, Ho, Wo, 3*G*K] = " + Join(expected) + " for x of shape " +
                 Join(x_shape) + ", got " + Join(off_shape));
  }
  return DeformableOffsetsGeometry{n,
                                   h,
                                   w,
                                   c,
                                   ho,
                                   wo,
                                   g.ksize[0],
                                   g.ksize[1],
                                   g.strides[0],
                                   g.strides[1],
                                   g.pads[0],
                                   g.pads[2],
                                   g.dilations[0],
                                   g.dilations[1],
                                   g.deformable_groups,
                                   g.modulated};
}

// Checks that grad has the forward output's shape.
void CheckGrad(const std::string& op, const py::array& grad, const Shape& y_shape) {
  if (ShapeOf(grad) != y_shape) {
    Fail(op, "grad must have the shape of the forward output " + Join(y_shape) + ", got " +
                 Join(ShapeOf(grad)));
  }
}

// A forward pass: y of y_shape, filled by kernel(y's data) with the GIL released.
template <typename T, typename Kernel>
py::array RunForward(const Shape& y_shape, Kernel&& kernel) {
  py::array_t<T> y(y_shape);
  if (y.size() == 0) return std::move(y);
  T* out = y.mutable_data();
  py::gil_scoped_release release;
  kernel(out);
  return std::move(y);
}

// A backward pass: zeroed gradients of the given shapes (the inputs'), filled by
// kernel(their data) with the GIL released unless grad is empty.
template <typename T, typename Kernel>
py::tuple RunBackward(const py::array& grad, const std::vector<Shape>& shapes, Kernel&& kernel) {
  std::vector<py::array_t<T>> grads;
  std::vector<T*> out;
  for (const Shape& shape : shapes) {
    grads.emplace_back(shape);
    out.push_back(grads.back().mutable_data());
    std::fill_n(out.back(), grads.back().size(), T(0));
  }
  if (grad.size() > 0) {
    py::gil_scoped_release release;
    kernel(out.data());
  }
  py::tuple result(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) result[i] = grads[i];
  return result;
}

// ---- deformable_offsets ----

Shape DeformableOffsetsShape(const DeformableOffsetsGeometry& geo) {
  return {geo.batch, geo.out_height * geo.kernel_h, geo.out_width * geo.kernel_w, geo.channels};
}

py::array DeformableOffsets(const py::array& x, const py::array& offsets, const Shape& ksize,
                            const Shape& strides, const Shape& pads, const Shape& dilations,
                            int64_t deformable_groups, bool modulated, int64_t threads) {
  const std::string op = "deformable_offsets";
  const DeformableOffsetsGeometry geo = CheckDeformableOffsets(
      op, {ksize, strides, pads, dilations, deformable_groups, modulated}, x, offsets);
  const ParallelFor parallel_for = ThreadParallelFor(Threads(threads));
  return DispatchDtype(op, x, [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto xa = Input<T>(op, "x", x), oa = Input<T>(op, "offsets", offsets);
    return RunForward<T>(DeformableOffsetsShape(geo), [&](T* y) {
      DeformableOffsetsForward<T>(geo, xa.data(), oa.data(), y, parallel_for);
    });
  });
}

py::tuple DeformableOffsetsGrad(const py::array& grad, const py::array& x, const py::array& offsets,
                                const Shape& ksize, const Shape& strides, const Shape& pads,
                                const Shape& dilations, int64_t deformable_groups, bool modulated,
                                int64_t threads) {
  const std::string op = "deformable_offsets_grad";
  const GeometryArgs args = {ksize, strides, pads, dilations, deformable_groups, modulated};
  const DeformableOffsetsGeometry geo = CheckDeformableOffsets(op, args, x, offsets);
  CheckGrad(op, grad, DeformableOffsetsShape(geo));
  const int64_t workers = Threads(threads);
  const ParallelFor parallel_for = ThreadParallelFor(workers);
  return DispatchDtype(op, x, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const auto ga = Input<T>(op, "grad", grad), xa = Input<T>(op, "x", x);
    const auto oa = Input<T>(op, "offsets", offsets);
    return RunBackward<T>(ga, {ShapeOf(x), ShapeOf(offsets)}, [&](T* const* out) {
      DeformableOffsetsBackward<T>(geo, xa.data(), oa.data(), ga.data(), out[0], out[1], workers,
                                   parallel_for);
    });
  });
}

// ---- deform_conv2d (one convolution group, no bias) ----

// Checks filters [kh, kw, C, F] against x, and x and offsets as CheckDeformableOffsets;
// returns the geometry and F.
DeformableOffsetsGeometry CheckDeformConv2D(const std::string& op, const py::array& x,
                                            const py::array& offsets, const py::array& filters,
                                            GeometryArgs args, int64_t* features) {
  const Shape f_shape = ShapeOf(filters), x_shape = ShapeOf(x);
  if (f_shape.size() != 4) {
    Fail(op, "filters must be rank 4 [kh, kw, C, F], got shape " + Join(f_shape));
  }
  args.ksize = {f_shape[0], f_shape[1]};
  const DeformableOffsetsGeometry geo = CheckDeformableOffsets(op, args, x, offsets);
  if (f_shape[2] != x_shape[3]) {
    Fail(op, "filters must have shape [kh, kw, C, F] with C = " + std::to_string(x_shape[3]) +
                 " (x's channels; one convolution group), got " + Join(f_shape));
  }
  *features = f_shape[3];
  return geo;
}

py::array DeformConv2D(const py::array& x, const py::array& offsets, const py::array& filters,
                       const Shape& strides, const Shape& pads, const Shape& dilations,
                       int64_t deformable_groups, bool modulated, int64_t threads) {
  const std::string op = "deform_conv2d";
  int64_t features = 0;
  const DeformableOffsetsGeometry geo =
      CheckDeformConv2D(op, x, offsets, filters,
                        {{}, strides, pads, dilations, deformable_groups, modulated}, &features);
  const ParallelFor parallel_for = ThreadParallelFor(Threads(threads));
  return DispatchDtype(op, x, [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto xa = Input<T>(op, "x", x), oa = Input<T>(op, "offsets", offsets);
    const auto fa = Input<T>(op, "filters", filters);
    return RunForward<T>(Shape{geo.batch, geo.out_height, geo.out_width, features}, [&](T* y) {
      DeformConv2DForward<T>(geo, features, xa.data(), oa.data(), fa.data(), y, parallel_for);
    });
  });
}

py::tuple DeformConv2DGrad(const py::array& grad, const py::array& x, const py::array& offsets,
                           const py::array& filters, const Shape& strides, const Shape& pads,
                           const Shape& dilations, int64_t deformable_groups, bool modulated,
                           int64_t threads) {
  const std::string op = "deform_conv2d_grad";
  const GeometryArgs args = {{}, strides, pads, dilations, deformable_groups, modulated};
  int64_t features = 0;
  const DeformableOffsetsGeometry geo = CheckDeformConv2D(op, x, offsets, filters, args, &features);
  CheckGrad(op, grad, {geo.batch, geo.out_height, geo.out_width, features});
  const int64_t workers = Threads(threads);
  const ParallelFor parallel_for = ThreadParallelFor(workers);
  return DispatchDtype(op, x, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const auto ga = Input<T>(op, "grad", grad), xa = Input<T>(op, "x", x);
    const auto oa = Input<T>(op, "offsets", offsets), fa = Input<T>(op, "filters", filters);
    return RunBackward<T>(ga, {ShapeOf(x), ShapeOf(offsets), ShapeOf(filters)}, [&](T* const* out) {
      DeformConv2DBackward<T>(geo, features, xa.data(), oa.data(), fa.data(), ga.data(), out[0],
                              out[1], out[2], workers, parallel_for);
    });
  });
}

// ---- bilinear_sample ----

// Checks x [N, H, W, C] and coords [N, ..., 2] as ops/_checks.bilinear_sample_shapes.
BilinearSampleGeometry CheckBilinearSample(const std::string& op, const py::array& x,
                                           const py::array& coords) {
  const Shape x_shape = ShapeOf(x), c_shape = ShapeOf(coords);
  if (x_shape.size() != 4) Fail(op, "x must be rank 4 [N, H, W, C], got shape " + Join(x_shape));
  if (c_shape.size() < 2 || c_shape.back() != 2) {
    Fail(op, "coords must have shape [N, ..., 2] holding (x, y), got shape " + Join(c_shape));
  }
  if (c_shape[0] != x_shape[0]) {
    Fail(op, "coords batch (" + std::to_string(c_shape[0]) + ") must equal x batch (" +
                 std::to_string(x_shape[0]) + ")");
  }
  if (x_shape[1] * x_shape[2] * x_shape[3] >= (int64_t(1) << 31)) {
    Fail(op, "x is too large: H*W*C must be < 2^31 per batch item, got shape " + Join(x_shape));
  }
  const int64_t points = Product(Shape(c_shape.begin() + 1, c_shape.end() - 1));
  return BilinearSampleGeometry{x_shape[0], x_shape[1], x_shape[2], x_shape[3], points};
}

Shape BilinearSampleShape(const py::array& x, const py::array& coords) {
  Shape shape = ShapeOf(coords);
  shape.back() = ShapeOf(x)[3];
  return shape;
}

py::array BilinearSample(const py::array& x, const py::array& coords, int64_t threads) {
  const std::string op = "bilinear_sample";
  const BilinearSampleGeometry geo = CheckBilinearSample(op, x, coords);
  const ParallelFor parallel_for = ThreadParallelFor(Threads(threads));
  return DispatchDtype(op, x, [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto xa = Input<T>(op, "x", x), ca = Input<T>(op, "coords", coords);
    return RunForward<T>(BilinearSampleShape(x, coords), [&](T* y) {
      BilinearSampleForward<T>(geo, xa.data(), ca.data(), y, parallel_for);
    });
  });
}

py::tuple BilinearSampleGrad(const py::array& grad, const py::array& x, const py::array& coords,
                             int64_t threads) {
  const std::string op = "bilinear_sample_grad";
  const BilinearSampleGeometry geo = CheckBilinearSample(op, x, coords);
  CheckGrad(op, grad, BilinearSampleShape(x, coords));
  const ParallelFor parallel_for = ThreadParallelFor(Threads(threads));
  return DispatchDtype(op, x, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const auto ga = Input<T>(op, "grad", grad), xa = Input<T>(op, "x", x);
    const auto ca = Input<T>(op, "coords", coords);
    return RunBackward<T>(ga, {ShapeOf(x), ShapeOf(coords)}, [&](T* const* out) {
      BilinearSampleBackward<T>(geo, xa.data(), ca.data(), ga.data(), out[0], out[1], parallel_for);
    });
  });
}

// Binds f as the Python function `name`: its arrays (and ksize) `leading`, then the geometry
// keywords with the defaults of the ops package, and threads.
template <typename F, typename... Leading>
void DefDeformable(py::module_& m, const char* name, F f, const char* doc, Leading... leading) {
  using py::arg;
  const Shape one = {1, 1}, no_pads = {0, 0, 0, 0};
  m.def(name, f, leading..., arg("strides") = one, arg("pads") = no_pads, arg("dilations") = one,
        arg("deformable_groups") = 1, arg("modulated") = true, arg("threads") = 0, doc);
}

}  // namespace
}  // namespace edvr

PYBIND11_MODULE(edvr_kernels, m) {
  using namespace edvr;
  using py::arg;
  m.doc() =
      "EDVR's framework-free CPU sampling kernels for NumPy arrays (float32, float64), "
      "without TensorFlow. Semantics: docs/ops.md; arguments as in the `ops` package.";
  DefDeformable(m, "deformable_offsets", &DeformableOffsets,
                "x [N, H, W, C], offsets [N, Ho, Wo, 3*G*K] (dx, dy, mask blocks) -> "
                "y [N, Ho*kh, Wo*kw, C].\npads: (top, bottom, left, right).",
                arg("x"), arg("offsets"), arg("ksize"));
  DefDeformable(m, "deformable_offsets_grad", &DeformableOffsetsGrad,
                "(grad_x, grad_offsets) of sum(grad * deformable_offsets(x, offsets, ...)).",
                arg("grad"), arg("x"), arg("offsets"), arg("ksize"));
  DefDeformable(
      m, "deform_conv2d", &DeformConv2D,
      "The fused deformable convolution, one convolution group, no bias: x [N, H, W, C],\n"
      "offsets [N, Ho, Wo, 3*G*K], filters [kh, kw, C, F] -> y [N, Ho, Wo, F].",
      arg("x"), arg("offsets"), arg("filters"));
  DefDeformable(
      m, "deform_conv2d_grad", &DeformConv2DGrad,
      "(grad_x, grad_offsets, grad_filters) of sum(grad * deform_conv2d(x, offsets, filters)).",
      arg("grad"), arg("x"), arg("offsets"), arg("filters"));
  m.def("bilinear_sample", &BilinearSample, arg("x"), arg("coords"), arg("threads") = 0,
        "x [N, H, W, C], coords [N, ..., 2] holding (x, y) -> [N, ..., C], zero outside.");
  m.def("bilinear_sample_grad", &BilinearSampleGrad, arg("grad"), arg("x"), arg("coords"),
        arg("threads") = 0, "(grad_x, grad_coords) of sum(grad * bilinear_sample(x, coords)).");
}
