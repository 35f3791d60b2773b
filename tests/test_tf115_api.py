"""Every `tf.` path the project's Python code uses exists in TF 1.15's public API,
which Ascend's TF adapter targets (the list is docs/tf115_api.txt, one `tf.` path per line)."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_LIST = os.path.join(ROOT, "docs", "tf115_api.txt")
PACKAGES = ("ops", "edvr", "kernels", "bench")


def python_files():
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def tf_paths(source):
    """(line, dotted path) of every maximal attribute chain rooted at the name `tf`,
    and of every import of TensorFlow other than `import tensorflow as tf`."""
    tree = ast.parse(source)
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id == "tf":
                yield node.lineno, "tf." + ".".join(reversed(parts))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tensorflow") and (alias.name, alias.asname) != (
                    "tensorflow",
                    "tf",
                ):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tensorflow"):
            yield node.lineno, f"from {node.module} import ..."


def test_scanner_finds_paths():
    found = [
        p
        for _, p in tf_paths(
            "import tensorflow as tf\nx = tf.compat.v1.nn.conv2d(a, tf.nn.relu(b))\n"
            "from tensorflow.python import ops\n"
        )
    ]
    assert sorted(found) == [
        "from tensorflow.python import ...",
        "tf.compat.v1.nn.conv2d",
        "tf.nn.relu",
    ]


def test_every_tf_path_is_in_tf115_api():
    with open(API_LIST) as f:
        allowed = {line.strip() for line in f if line.strip()}
    files = list(python_files())
    assert files, "no Python files found to check"
    missing = []
    for path in files:
        with open(path) as f:
            for line, used in tf_paths(f.read()):
                if used not in allowed:
                    missing.append(f"{os.path.relpath(path, ROOT)}:{line}: {used}")
    assert not missing, "not in the TF 1.15 API:\n" + "\n".join(missing)
