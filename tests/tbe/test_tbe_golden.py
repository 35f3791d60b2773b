"""The golden-data tool writes consistent msopst cases whose expectations match the float64 oracle."""

import json

import numpy as np
import pytest

from tests.tbe import sampling_oracle as oracle

pytest.importorskip("tensorflow")
from kernels.tbe import golden  # noqa: E402  (needs TF for the reference ops)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    golden.main(["--output", str(out), "--seed", "5"])
    return out, json.loads((out / "manifest.json").read_text())


def _load(out, entry):
    data = np.load(out / entry["npy"])
    raw = np.fromfile(out / entry["bin"], dtype=entry["dtype"])
    assert data.dtype == np.dtype(entry["dtype"]) and list(data.shape) == entry["shape"]
    np.testing.assert_array_equal(raw, data.reshape(-1))
    return data.astype(np.float64)


def test_suites_and_manifest_agree(written):
    out, manifest = written
    n_dtypes = len(golden.DTYPES)
    per_op = {
        "EdvrDeformableOffsets": len(golden.DEFORMABLE_CASES),
        "EdvrBilinearSample": len(golden.BILINEAR_CASES),
    }
    per_op.update({op + "Grad": n for op, n in list(per_op.items())})
    assert len(manifest) == n_dtypes * sum(per_op.values())
    for op, count in per_op.items():
        suite = json.loads((out / (op + ".json")).read_text())
        assert len(suite) == count * n_dtypes
        entries = {e["case"]: e for e in manifest if e["op"] == op}
        for case in suite:
            entry = entries[case["case_name"]]
            assert case["op"] == op
            assert [d["name"] for d in case["input_desc"]] == [i["name"] for i in entry["inputs"]]
            assert [d["shape"] for d in case["output_desc"]] == [
                o["shape"] for o in entry["expected"]
            ]
            for desc, data in zip(case["input_desc"], entry["inputs"]):
                assert desc["value"] == data["bin"] and desc["shape"] == data["shape"]
                assert desc["type"] == [golden.CANN_DTYPE[entry["dtype"]]]


def test_expected_outputs_match_independent_oracle(written):
    out, manifest = written
    for entry in manifest:
        ins = [_load(out, i) for i in entry["inputs"]]
        want = [_load(out, e) for e in entry["expected"]]
        attrs = {}
        if entry["op"].startswith("EdvrDeformableOffsets"):
            case = json.loads((out / "EdvrDeformableOffsets.json").read_text())
            name = entry["case"].replace("EdvrDeformableOffsetsGrad_", "EdvrDeformableOffsets_")
            attrs = {
                a["name"]: a["value"]
                for a in next(c for c in case if c["case_name"] == name)["attr"]
            }
        fn = {
            "EdvrDeformableOffsets": lambda x, o: [oracle.deformable_offsets(x, o, **attrs)],
            "EdvrDeformableOffsetsGrad": lambda g, x, o: oracle.deformable_offsets_grad(
                g, x, o, **attrs
            ),
            "EdvrBilinearSample": lambda x, c: [oracle.bilinear_sample(x, c)],
            "EdvrBilinearSampleGrad": lambda g, x, c: oracle.bilinear_sample_grad(g, x, c),
        }[entry["op"]]
        # Expectations are stored in the case dtype: compare at that dtype's storage precision.
        eps = float(np.finfo(entry["dtype"]).eps)
        for got, ref in zip(want, fn(*ins)):
            np.testing.assert_allclose(got, ref, rtol=eps, atol=eps * max(1.0, np.abs(ref).max()))
