"""Golden data for running the EDVR TBE kernels on an Ascend device with CANN's msopst.

python -m kernels.tbe.golden --output DIR [--seed 0]

Writes, per op type, DIR/<OpType>.json: a list of msopst-style test cases (input_desc with
"value" pointing at a .bin file, output_desc, attr) and DIR/data/<case>_<tensor>.{bin,npy}:
inputs and expected outputs, computed with the pure-TF reference ops (`ops.reference`, float64,
gradients by tf.GradientTape) from the inputs rounded to the case dtype. DIR/manifest.json lists
every case with its files and the comparison tolerance for the device results.
"""

import argparse
import json
import os

import numpy as np

from kernels.tbe.tbe.impl.edvr_sampling_plan import out_size

# (name, x shape, ksize, strides, pads, dilations, deformable_groups): odd sizes; 1, 2 and 8
# deformable groups; C fills whole 32-byte blocks in float16 (C % 16 == 0), as the kernels require.
DEFORMABLE_CASES = (
    ("g1_3x3_pad1", (1, 7, 9, 16), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ("g2_3x3_stride2", (2, 9, 7, 32), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),
    ("g8_3x3_edvr", (1, 7, 9, 64), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),
    ("g2_2x3_dilated", (1, 9, 11, 32), (2, 3), (1, 2), (0, 1, 2, 0), (2, 1), 2),
)
# (name, x shape, coords shape)
BILINEAR_CASES = (
    ("flow_warp", (2, 7, 9, 16), (2, 7, 9, 2)),
    ("points", (1, 11, 5, 32), (1, 13, 2)),
)
DTYPES = ("float16", "float32")
# Device results against float64 expectations of the rounded inputs: the kernels compute in
# float32 and round once to the output dtype (float16 grad_x too, accumulated in float32).
TOLERANCE = {"float16": {"rtol": 2e-3, "atol": 2e-3}, "float32": {"rtol": 1e-5, "atol": 1e-5}}
CANN_DTYPE = {"float16": "float16", "float32": "float"}


def _tf():
    import tensorflow as tf

    return tf


def _reference():
    from ops import reference

    return reference


def deformable_inputs(rng, x_shape, ksize, strides, pads, dilations, deformable_groups):
    n, h, w, c = x_shape
    ho = out_size(h, pads[0] + pads[1], ksize[0], dilations[0], strides[0])
    wo = out_size(w, pads[2] + pads[3], ksize[1], dilations[1], strides[1])
    x = rng.uniform(-1, 1, x_shape)
    k = ksize[0] * ksize[1]
    shifts = rng.uniform(
        -2.5, 2.5, (n, ho, wo, 2 * deformable_groups * k)
    )  # reaches past the borders
    mask = rng.uniform(0, 1, (n, ho, wo, deformable_groups * k))
    return x, np.concatenate([shifts, mask], axis=-1)


def bilinear_inputs(rng, x_shape, coords_shape):
    h, w = x_shape[1:3]
    x = rng.uniform(-1, 1, x_shape)
    coords = np.stack(
        [
            rng.uniform(-1.5, w + 0.5, coords_shape[:-1]),
            rng.uniform(-1.5, h + 0.5, coords_shape[:-1]),
        ],
        axis=-1,
    )
    return x, coords


def reference_with_grads(fn, x, params, make_upstream):
    """(y, upstream grad, grad_x, grad_params) of fn(x, params) in float64; make_upstream(shape)."""
    tf = _tf()
    x_t, p_t = tf.constant(x, tf.float64), tf.constant(params, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x_t, p_t])
        y = fn(x_t, p_t)
        upstream = tf.constant(make_upstream(tuple(y.shape)), tf.float64)
        loss = tf.reduce_sum(y * upstream)
    grad_x, grad_p = tape.gradient(loss, [x_t, p_t])
    return y.numpy(), upstream.numpy(), grad_x.numpy(), grad_p.numpy()


def _write(data_dir, case, name, array, dtype):
    array = np.ascontiguousarray(array, dtype=dtype)
    stem = os.path.join(data_dir, "%s_%s" % (case, name))
    array.tofile(stem + ".bin")
    np.save(stem + ".npy", array)
    return {
        "name": name,
        "shape": list(array.shape),
        "dtype": dtype,
        "value_range": [float(array.min()), float(array.max())],
        "bin": os.path.relpath(stem + ".bin", os.path.dirname(data_dir)),
        "npy": os.path.relpath(stem + ".npy", os.path.dirname(data_dir)),
    }


def _desc(entry, fmt, with_value):
    desc = {
        "name": entry["name"],
        "format": [fmt],
        "type": [CANN_DTYPE[entry["dtype"]]],
        "shape": entry["shape"],
    }
    if with_value:
        desc.update(
            {
                "data_distribute": ["uniform"],
                "value_range": [entry["value_range"]],
                "value": entry["bin"],
            }
        )
    return desc


def _attrs(ksize, strides, pads, dilations, deformable_groups):
    return [
        {"name": "ksize", "type": "list_int", "value": list(ksize)},
        {"name": "strides", "type": "list_int", "value": list(strides)},
        {"name": "pads", "type": "list_int", "value": list(pads)},
        {"name": "dilations", "type": "list_int", "value": list(dilations)},
        {"name": "deformable_groups", "type": "int", "value": deformable_groups},
        {"name": "modulated", "type": "bool", "value": True},
    ]


def generate(output, seed=0):
    """Write all cases under `output`; returns the manifest (also written as manifest.json)."""
    reference = _reference()
    data_dir = os.path.join(output, "data")
    os.makedirs(data_dir, exist_ok=True)
    suites = {
        "EdvrDeformableOffsets": [],
        "EdvrDeformableOffsetsGrad": [],
        "EdvrBilinearSample": [],
        "EdvrBilinearSampleGrad": [],
    }
    manifest = []
    rng = np.random.RandomState(seed)  # runs on the Ascend host: no numpy 1.17 Generator

    def add(op, case, inputs, outputs, formats, attrs, dtype):
        suites[op].append(
            {
                "case_name": case,
                "op": op,
                "input_desc": [_desc(e, f, True) for e, f in zip(inputs, formats[0])],
                "output_desc": [_desc(e, f, False) for e, f in zip(outputs, formats[1])],
                "attr": attrs,
            }
        )
        manifest.append(
            {
                "op": op,
                "case": case,
                "dtype": dtype,
                "inputs": inputs,
                "expected": outputs,
                "tolerance": TOLERANCE[dtype],
            }
        )

    for dtype in DTYPES:
        upstream = lambda shape, dtype=dtype: (
            rng.uniform(-1, 1, shape).astype(dtype).astype(np.float64)
        )
        for name, x_shape, ksize, strides, pads, dilations, deformable_groups in DEFORMABLE_CASES:
            x, off = deformable_inputs(
                rng, x_shape, ksize, strides, pads, dilations, deformable_groups
            )
            x, off = (a.astype(dtype).astype(np.float64) for a in (x, off))
            fn = lambda a, b: reference.deformable_offsets(
                a, b, ksize, strides, pads, dilations, deformable_groups, True
            )
            y, g, gx, goff = reference_with_grads(fn, x, off, upstream)
            case = "%s_%s" % (name, dtype)
            attrs = _attrs(ksize, strides, pads, dilations, deformable_groups)
            w = lambda n, a, c=case: _write(data_dir, "EdvrDeformableOffsets_" + c, n, a, dtype)
            add(
                "EdvrDeformableOffsets",
                "EdvrDeformableOffsets_" + case,
                [w("x", x), w("offsets", off)],
                [w("y", y)],
                (["NHWC", "NHWC"], ["NHWC"]),
                attrs,
                dtype,
            )
            w = lambda n, a, c=case: _write(data_dir, "EdvrDeformableOffsetsGrad_" + c, n, a, dtype)
            add(
                "EdvrDeformableOffsetsGrad",
                "EdvrDeformableOffsetsGrad_" + case,
                [w("grad", g), w("x", x), w("offsets", off)],
                [w("grad_x", gx), w("grad_offsets", goff)],
                (["NHWC"] * 3, ["NHWC"] * 2),
                attrs,
                dtype,
            )
        for name, x_shape, coords_shape in BILINEAR_CASES:
            x, coords = bilinear_inputs(rng, x_shape, coords_shape)
            x, coords = (a.astype(dtype).astype(np.float64) for a in (x, coords))
            y, g, gx, gc = reference_with_grads(reference.bilinear_sample, x, coords, upstream)
            case = "%s_%s" % (name, dtype)
            w = lambda n, a, c=case: _write(data_dir, "EdvrBilinearSample_" + c, n, a, dtype)
            add(
                "EdvrBilinearSample",
                "EdvrBilinearSample_" + case,
                [w("x", x), w("coords", coords)],
                [w("y", y)],
                (["NHWC", "ND"], ["ND"]),
                [],
                dtype,
            )
            w = lambda n, a, c=case: _write(data_dir, "EdvrBilinearSampleGrad_" + c, n, a, dtype)
            add(
                "EdvrBilinearSampleGrad",
                "EdvrBilinearSampleGrad_" + case,
                [w("grad", g), w("x", x), w("coords", coords)],
                [w("grad_x", gx), w("grad_coords", gc)],
                (["ND", "NHWC", "ND"], ["NHWC", "ND"]),
                [],
                dtype,
            )
    for op, cases in suites.items():
        with open(os.path.join(output, op + ".json"), "w") as f:
            json.dump(cases, f, indent=2)
    with open(os.path.join(output, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", required=True, help="directory for the case JSON and data files"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = generate(args.output, args.seed)
    print("wrote %d cases to %s" % (len(manifest), args.output))


if __name__ == "__main__":
    main()
