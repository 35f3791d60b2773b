"""Static checks that the TF op schema, op info ini, op proto, TF parser plugin and TBE entry points
agree on op names, inputs, outputs, attributes (with defaults) and dtypes; and that the TBE modules
compile and import CANN lazily."""

import configparser
import glob
import importlib
import inspect
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TBE = os.path.join(ROOT, "kernels", "tbe")
INI = os.path.join(TBE, "tbe", "op_info_cfg", "ai_core", "ascend910", "edvr_sampling_ops.ini")
PROTO = os.path.join(TBE, "op_proto", "edvr_sampling_ops.h")
PLUGIN = os.path.join(TBE, "framework", "tf_plugin", "tensorflow_edvr_sampling_plugin.cc")
TF_SOURCES = sorted(
    glob.glob(os.path.join(ROOT, "ops", "cc", "*.cc"))
    + glob.glob(os.path.join(ROOT, "ops", "cc", "*.h"))
)
OPS = [
    "EdvrBilinearSample",
    "EdvrBilinearSampleGrad",
    "EdvrDeformableOffsets",
    "EdvrDeformableOffsetsGrad",
]
INI_TO_PROTO_DTYPE = {"float16": "DT_FLOAT16", "float": "DT_FLOAT"}
INI_TO_TF_DTYPE = {"float16": "half", "float": "float"}
ATTR_TYPES = {"list(int)": ("listInt", "ListInt"), "int": ("int", "Int"), "bool": ("bool", "Bool")}


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _normalise_default(value):
    """'[1, 1]', '{1, 1}', '1,1' -> '1,1'; 'true' -> 'true'."""
    return re.sub(r"[\s\[\]{}]", "", value).lower() if value is not None else None


# ---- parsers -------------------------------------------------------------------------------------
def parse_tf_ops(paths):
    """{op: {"inputs": [...], "outputs": [...], "attrs": [(name, type, default)], "T": [...]}} from
    REGISTER_OP chains, with object-like #define macros (attribute lists) of any of the files
    expanded."""
    ops, macros = {}, {}
    texts = [_strip_comments(open(path).read()).replace("\\\n", " ") for path in paths]
    for text in texts:
        macros.update(re.findall(r"#define\s+(\w+)[ \t]+([^\n]*)", text))
    for text in texts:
        for match in re.finditer(r'REGISTER_OP\(\s*"(\w+)"\s*\)(.*?);', text, flags=re.S):
            chain = match.group(2)
            for _ in range(3):  # macros may nest
                chain = re.sub(
                    r"\.\s*(\w+)\b(?!\s*\()",
                    lambda m: "." + macros.get(m.group(1), m.group(1)),
                    chain,
                )
            calls = re.findall(r'(Input|Output|Attr)\(\s*"((?:[^"\\]|\\.)*)"\s*\)', chain)
            op = ops[match.group(1)] = {"inputs": [], "outputs": [], "attrs": [], "T": []}
            for kind, spec in calls:
                name, _, rest = (s.strip() for s in spec.partition(":"))
                if kind == "Input":
                    op["inputs"].append(name)
                elif kind == "Output":
                    op["outputs"].append(name)
                elif name == "T":
                    op["T"] = [t.strip() for t in rest.strip("{} ").split(",")]
                else:
                    type_, _, default = (s.strip() for s in rest.partition("="))
                    op["attrs"].append((name, type_, default or None))
    return ops


def parse_ini(path):
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read(path)
    ops = {}
    for section in parser.sections():
        items = dict(parser.items(section))
        ports = lambda kind: [
            items["%s%d.name" % (kind, i)] for i in range(10) if "%s%d.name" % (kind, i) in items
        ]
        dtypes = {
            items["%s.name" % k[:-6]]: items[k].split(",") for k in items if k.endswith(".dtype")
        }
        formats = {
            items["%s.name" % k[:-7]]: items[k].split(",") for k in items if k.endswith(".format")
        }
        attrs = [a for a in items.get("attr.list", "").split(",") if a]
        ops[section] = {
            "inputs": ports("input"),
            "outputs": ports("output"),
            "dtypes": dtypes,
            "formats": formats,
            "attrs": [
                (
                    a,
                    items["attr_%s.type" % a],
                    items.get("attr_%s.defaultValue" % a),
                    items["attr_%s.paramType" % a],
                )
                for a in attrs
            ],
            "opFile": items["opFile.value"],
            "opInterface": items["opInterface.value"],
        }
    return ops


def preprocess(path):
    """The C++ source after the preprocessor has expanded our own macros. GE's and the op
    registry's headers are empty stand-ins here, so their macros (REG_OP, .ATTR, ...) stay as
    written: the text the parsers read is what CANN's compiler starts from."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ preprocessor (c++ or g++) to expand the op proto's macros")
    with tempfile.TemporaryDirectory() as stubs:
        for header in ("graph/operator_reg.h", "register/register.h"):
            os.makedirs(os.path.join(stubs, os.path.dirname(header)), exist_ok=True)
            open(os.path.join(stubs, header), "w").close()
        result = subprocess.run(
            [compiler, "-E", "-P", "-x", "c++", "-I", stubs, path], capture_output=True, text=True
        )
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse_proto(path):
    text = preprocess(path)
    ops = {}
    for name, body in re.findall(
        r"REG_OP\((\w+)\)(.*?)\.OP_END_FACTORY_REG\(\1\)", text, flags=re.S
    ):
        ports = lambda kind: re.findall(r"\.%s\((\w+),\s*TensorType\(\{([^}]*)\}\)\)" % kind, body)
        attrs = []
        for kind, attr in re.findall(r"\.(REQUIRED_ATTR|ATTR)\(([^;]*?)\)(?=\s*\.)", body + "."):
            parts = [p.strip() for p in attr.split(",", 2)]
            attrs.append((parts[0], parts[1], parts[2] if kind == "ATTR" else None))
        ops[name] = {
            "inputs": [n for n, _ in ports("INPUT")],
            "outputs": [n for n, _ in ports("OUTPUT")],
            "dtypes": {
                n: [t.strip() for t in d.split(",")] for n, d in ports("INPUT") + ports("OUTPUT")
            },
            "attrs": attrs,
        }
    return ops


def parse_plugin(path):
    text = preprocess(path)
    return {
        op: (framework, origin)
        for op, framework, origin in re.findall(
            r'REGISTER_CUSTOM_OP\("(\w+)"\)\s*\.FrameworkType\((\w+)\)\s*\.OriginOpType\("(\w+)"\)',
            text,
        )
    }


@pytest.fixture(scope="module")
def tf_ops():
    if not TF_SOURCES:
        pytest.skip("ops/cc/*.cc (the TF op registrations) not present yet")
    ops = {k: v for k, v in parse_tf_ops(TF_SOURCES).items() if k in OPS}
    assert sorted(ops) == OPS, "REGISTER_OP for all four ops in ops/cc"
    return ops


# ---- tests ---------------------------------------------------------------------------------------
def test_parser_expands_attribute_macros():
    source = (
        '#define ATTRS \\\n  Attr("k: list(int)") \\\n      .Attr("g: int = 1")\n'
        'REGISTER_OP("Op").Input("x: T").Output("y: T").Attr("T: {float, double}").ATTRS'
        '.SetShapeFn([](InferenceContext* c) { return Status(); });\n'
    )
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "edvr_parser_probe.cc")
    with open(path, "w") as f:
        f.write(source)
    assert parse_tf_ops([path])["Op"] == {
        "inputs": ["x"],
        "outputs": ["y"],
        "T": ["float", "double"],
        "attrs": [("k", "list(int)", None), ("g", "int", "1")],
    }


def test_proto_port_types_are_written_out():
    """Recent GE headers stringify the type argument of INPUT/OUTPUT (InputRegister(#x, #t)), so it
    must be TensorType({...}) itself in the source, not a macro that expands to it."""
    source = _strip_comments(open(PROTO).read())
    ports = re.findall(r"\.(?:INPUT|OUTPUT)\((\w+),\s*([^\n]*)\)\s*$", source, flags=re.M)
    assert len(ports) == 16  # 3 + 5 + 3 + 5 ports of the four ops
    for name, type_arg in ports:
        assert re.fullmatch(r"TensorType\(\{[\w\s,]+\}\)", type_arg), (name, type_arg)


def test_same_ops_everywhere():
    ini, proto, plugin = parse_ini(INI), parse_proto(PROTO), parse_plugin(PLUGIN)
    assert sorted(ini) == sorted(proto) == sorted(plugin) == OPS
    for op, (framework, origin) in plugin.items():
        assert framework == "TENSORFLOW" and origin == op
    assert "DeformableOffsets" not in ini, "must not clash with npu_bridge's built-in"


def test_ports_and_attrs_agree_with_tf(tf_ops):
    ini, proto = parse_ini(INI), parse_proto(PROTO)
    for op in OPS:
        tf_op = tf_ops[op]
        assert ini[op]["inputs"] == proto[op]["inputs"] == tf_op["inputs"], op
        assert ini[op]["outputs"] == proto[op]["outputs"] == tf_op["outputs"], op
        assert (
            [a[0] for a in ini[op]["attrs"]]
            == [a[0] for a in proto[op]["attrs"]]
            == [a[0] for a in tf_op["attrs"]]
        ), op
        for (name, tf_type, tf_default), ini_attr, proto_attr in zip(
            tf_op["attrs"], ini[op]["attrs"], proto[op]["attrs"]
        ):
            assert (ini_attr[1], proto_attr[1]) == ATTR_TYPES[tf_type], (op, name)
            assert ini_attr[3] == ("required" if tf_default is None else "optional"), (op, name)
            assert (
                _normalise_default(ini_attr[2])
                == _normalise_default(proto_attr[2])
                == _normalise_default(tf_default)
            ), (op, name)


def test_dtypes_agree(tf_ops):
    ini, proto = parse_ini(INI), parse_proto(PROTO)
    for op in OPS:
        ports = ini[op]["inputs"] + ini[op]["outputs"]
        assert set(ini[op]["dtypes"]) == set(ports)
        for port in ports:
            dtypes = ini[op]["dtypes"][port]
            assert dtypes == ["float16", "float"], (op, port)  # one T for every port
            assert len(ini[op]["formats"][port]) == len(dtypes), (op, port)
            assert proto[op]["dtypes"][port] == [INI_TO_PROTO_DTYPE[d] for d in dtypes], (op, port)
        # The TF graph is float32 (float16 comes from precision_mode=allow_mix_precision on device),
        # so the TF schema must accept float32; it adds double for the CPU kernels.
        assert "float" in tf_ops[op]["T"], op


def _impl(module):
    return importlib.import_module("kernels.tbe.tbe.impl." + module)


def test_entry_points_match_op_info():
    for op, info in parse_ini(INI).items():
        entry = getattr(_impl(info["opFile"]), info["opInterface"])
        params = inspect.signature(entry).parameters
        expected = (
            info["inputs"] + info["outputs"] + [a[0] for a in info["attrs"]] + ["kernel_name"]
        )
        assert list(params) == expected, op
        for name, _, default, param_type in info["attrs"]:
            if param_type == "optional":
                got = params[name].default
                got = (
                    str(got).lower()
                    if isinstance(got, bool)
                    else ",".join(str(v) for v in got)
                    if isinstance(got, (tuple, list))
                    else str(got)
                )
                assert got == _normalise_default(default), (op, name)


def test_tbe_sources_compile(tmp_path):
    sources = glob.glob(os.path.join(TBE, "**", "*.py"), recursive=True)
    assert len(sources) >= 9
    for i, path in enumerate(sources):
        py_compile.compile(path, doraise=True, cfile=str(tmp_path / ("%d.pyc" % i)))


def test_kernels_import_cann_lazily(monkeypatch):
    for package in ("tbe", "te"):
        monkeypatch.setitem(sys.modules, package, None)  # importing them now fails
    entry = _impl("edvr_deformable_offsets")
    x = {"shape": (1, 5, 5, 16), "dtype": "float32", "format": "NHWC"}
    offsets = {"shape": (1, 5, 5, 27), "dtype": "float32", "format": "NHWC"}
    with pytest.raises(RuntimeError, match=r"need CANN's TIK .*set_env\.sh"):
        entry.edvr_deformable_offsets(x, offsets, {}, (3, 3), pads=(1, 1, 1, 1))
    grad = _impl("edvr_bilinear_sample_grad")
    with pytest.raises(RuntimeError, match="CANN"):
        grad.edvr_bilinear_sample_grad({}, x, {"shape": (1, 4, 2)}, {}, {})
    with pytest.raises(ValueError, match="x: expected dtype float16 or float32, got 'float64'"):
        entry.edvr_deformable_offsets(dict(x, dtype="float64"), offsets, {}, (3, 3))


def test_ini_converts_to_ops_info_json(tmp_path):
    out = tmp_path / "aic-ascend910-ops-info.json"
    subprocess.run(
        [sys.executable, os.path.join(TBE, "cmake", "ini_to_json.py"), str(out), INI], check=True
    )
    info = json.loads(out.read_text())
    assert sorted(info) == OPS
    assert info["EdvrDeformableOffsets"]["attr_ksize"] == {
        "type": "listInt",
        "value": "all",
        "paramType": "required",
    }
    assert info["EdvrBilinearSampleGrad"]["opFile"] == {"value": "edvr_bilinear_sample_grad"}
    assert info["EdvrDeformableOffsets"]["attr_pads"]["defaultValue"] == "[0,0,0,0]"


def test_list_defaults_are_bracketed():
    """CANN's samples write list defaults as [a,b] (e.g. Ascend/samples permute_tik.ini:
    attr_order.defaultValue=[0])."""
    for op, info in parse_ini(INI).items():
        for name, attr_type, default, _ in info["attrs"]:
            if attr_type.startswith("list") and default is not None:
                assert re.fullmatch(r"\[-?\d+(,-?\d+)*\]", default), (op, name, default)


def test_cmake_skips_without_cann(tmp_path):
    cmake = shutil.which("cmake") or os.path.join(os.path.dirname(sys.executable), "cmake")
    if not os.path.exists(cmake):
        pytest.skip("cmake not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("ASCEND_HOME_PATH", "ASCEND_OPP_PATH")}
    result = subprocess.run(
        [cmake, "-S", TBE, "-B", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "EDVR TBE ops: skipped, no CANN toolkit" in result.stdout
