"""Code that runs on the Ascend host (ops/, edvr/, kernels/tbe/, scripts/) must run on Python 3.7
with numpy 1.17, what CANN's TF 1.15 adapter runs on (requirements-ascend.txt).

Python: vermin (pinned in requirements.txt) with annotations treated as evaluated, since 3.7
evaluates them at definition time.

numpy: no interpreter with numpy 1.17 can be installed here, so the check is static and has limits
(docs/ascend.md, "Host check"). Every `numpy` name the host code reaches through `import numpy`
or `from numpy import` is looked up in the installed numpy; it fails when numpy's own docstring
marks the name, or a keyword argument passed to it, `versionadded` after 1.17, or when the name
is in NEWER_THAN_1_17 (names whose docstrings carry no such note, from numpy's release notes).
Methods on arrays (`x.astype(...)`) cannot be resolved statically and are not checked.
"""

import ast
import inspect
import os
import re
import subprocess
import sys

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_DIRS = ("ops", "edvr", os.path.join("kernels", "tbe"), "scripts")
NUMPY_FLOOR = (1, 17)

# Names absent from numpy 1.17 (or from 1.16, which TF 1.15 also accepts) whose docstrings have no
# versionadded note; the version is where numpy's release notes introduce them.
NEWER_THAN_1_17 = {
    # The Generator API is new in 1.17.0 itself; TF 1.15 accepts numpy 1.16, which lacks it, and the
    # project rule keeps host code on the legacy np.random functions.
    "random.default_rng": "1.17",
    "random.Generator": "1.17",
    "random.BitGenerator": "1.17",
    "random.SeedSequence": "1.17",
    "random.PCG64": "1.17",
    "random.Philox": "1.17",
    "random.SFC64": "1.17",
    "typing": "1.20",
    "from_dlpack": "1.22",
    "array_api": "1.22",
    "exceptions": "1.25",
    "dtypes": "1.25",
    "strings": "2.0",
    "long": "2.0",
    "ulong": "2.0",
    "isdtype": "2.0",
    "pow": "2.0",
    "acos": "2.0",
    "asin": "2.0",
    "atan": "2.0",
    "acosh": "2.0",
    "asinh": "2.0",
    "atanh": "2.0",
    "atan2": "2.0",
    "concat": "2.0",
    "permute_dims": "2.0",
    "matrix_transpose": "2.0",
    "bitwise_left_shift": "2.0",
    "bitwise_right_shift": "2.0",
    "bitwise_invert": "2.0",
    "unique_all": "2.0",
    "unique_counts": "2.0",
    "unique_inverse": "2.0",
    "unique_values": "2.0",
    "linalg.vector_norm": "2.0",
    "linalg.matrix_norm": "2.0",
    "linalg.vecdot": "2.0",
    "linalg.svdvals": "2.0",
    "linalg.matrix_transpose": "2.0",
    "linalg.diagonal": "2.0",
    "linalg.trace": "2.0",
    "linalg.outer": "2.0",
    "linalg.cross": "2.0",
    "linalg.tensordot": "2.0",
    "cumulative_sum": "2.1",
    "cumulative_prod": "2.1",
}
_VERSION_ADDED = re.compile(r"\.\. versionadded::\s*(\d+)\.(\d+)")


def host_sources():
    for folder in HOST_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(dirpath, name)


def test_vermin_python_3_7():
    folders = [os.path.join(ROOT, d) for d in HOST_DIRS if os.path.isdir(os.path.join(ROOT, d))]
    command = [
        sys.executable,
        "-c",
        "import sys; from vermin.main import main; sys.exit(main())",
        "--no-config-file",
        "-t=3.7-",
        "--violations",
        "--eval-annotations",
        "--no-tips",
    ]
    result = subprocess.run(command + folders, capture_output=True, text=True)
    assert result.returncode == 0, (
        "vermin -t=3.7- found code newer than Python 3.7:\n" + result.stdout + result.stderr
    )


def numpy_uses(source):
    """[(dotted numpy name, [keyword names], line)] for every numpy name the source reaches through
    its imports: attribute chains on `import numpy [as np]` aliases, names from `from numpy[.x]
    import y`, and the keywords of calls to them."""
    tree = ast.parse(source)
    aliases = {}  # local name -> dotted path inside numpy ("" for numpy itself)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "numpy" or alias.name.startswith("numpy."):
                    if alias.asname:
                        aliases[alias.asname] = (
                            alias.name[len("numpy.") :] if "." in alias.name else ""
                        )
                    else:
                        aliases["numpy"] = ""
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and (node.module == "numpy" or node.module.startswith("numpy."))
        ):
            prefix = node.module[len("numpy.") :] + "." if "." in node.module else ""
            for alias in node.names:
                aliases[alias.asname or alias.name] = prefix + alias.name

    def resolve(expr):
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name) or expr.id not in aliases:
            return None
        return ".".join([p for p in [aliases[expr.id]] if p] + parts[::-1])

    inner = set()  # np and np.random in np.random.rand: parts of a longer chain
    calls = {}  # id(function expression) -> keyword names of the call
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
        elif isinstance(node, ast.Call):
            calls[id(node.func)] = [k.arg for k in node.keywords if k.arg]
    uses = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("numpy.")
        ):
            uses.extend(
                (node.module[len("numpy.") :] + "." + a.name, [], node.lineno) for a in node.names
            )
        elif isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in inner:
            name = resolve(node)
            if name:
                uses.append((name, calls.get(id(node), []), node.lineno))
    return uses


def _version_notes(text):
    return [(int(a), int(b)) for a, b in _VERSION_ADDED.findall(text)]


def numpy_doc_sections(obj):
    """(text before the Parameters section, {parameter name: its description}) of a numpydoc
    docstring."""
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    lines = doc.splitlines()
    head_end = next(
        (
            i
            for i in range(len(lines) - 1)
            if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}
        ),
        len(lines),
    )
    params, current = {}, None
    for i in range(head_end + 2, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            break  # next section
        header = re.match(r"^\*{0,2}(\w+(?:\s*,\s*\w+)*)\s*(?::|$)", line)
        if header and not line.startswith(" "):
            current = [n.strip() for n in header.group(1).split(",")]
            for name in current:
                params[name] = ""
        elif current:
            for name in current:
                params[name] += line + "\n"
    return "\n".join(lines[:head_end]), params


def too_new(name, keywords):
    """Why `numpy.<name>(**keywords)` may not exist in numpy 1.17, or None."""
    for banned, version in NEWER_THAN_1_17.items():
        if name == banned or name.startswith(banned + "."):
            return "numpy.%s is new in numpy %s" % (banned, version)
    obj = numpy
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None  # not in the installed numpy either: the normal tests catch that
    if isinstance(obj, type(numpy)) or isinstance(obj, (int, float, str)):
        return None
    head, params = numpy_doc_sections(obj)
    if any(v > NUMPY_FLOOR for v in _version_notes(head)):
        return "numpy.%s: its docstring says versionadded %d.%d" % (
            (name,) + max(_version_notes(head))
        )
    for keyword in keywords:
        notes = _version_notes(params.get(keyword, ""))
        if any(v > NUMPY_FLOOR for v in notes):
            return "numpy.%s(%s=...): the keyword is versionadded %d.%d" % (
                (name, keyword) + max(notes)
            )
    return None


def test_checker_sees_new_numpy_api():
    source = (
        "import numpy as np\nfrom numpy.random import default_rng\nfrom numpy import lib\n"
        "a = np.random.default_rng(0)\nb = default_rng()\nc = np.argmax(x, axis=1, keepdims=True)\n"
        "d = np.broadcast_shapes((1,), (2,))\ne = np.mean(x, where=m)\n"
        "f = lib.stride_tricks.sliding_window_view(x, 3)\ng = np.pow(x, 2)\n"
        "ok = np.argmax(x, axis=1) + np.mean(x, axis=0) + np.float32(1) + np.pi\n"
    )
    found = {}
    for name, keywords, line in numpy_uses(source):
        found.setdefault(line, []).append(too_new(name, keywords))
    assert sorted(line for line, whys in found.items() if any(whys)) == [2, 4, 5, 6, 7, 8, 9, 10], (
        found
    )
    assert "keepdims" in found[6][0] and "1.22" in found[6][0]
    assert "where" in found[8][0]
    assert found[11] == [None] * 4


def test_host_code_uses_no_numpy_newer_than_1_17():
    problems = []
    for path in host_sources():
        with open(path) as f:
            source = f.read()
        for name, keywords, line in numpy_uses(source):
            why = too_new(name, keywords)
            if why:
                problems.append("%s:%d: %s" % (os.path.relpath(path, ROOT), line, why))
    assert not problems, (
        "host code must run with numpy 1.17 (requirements-ascend.txt):\n"
        + "\n".join(sorted(set(problems)))
    )
