"""Write the TF adapter's op filter, framework/tensorflow/npu_supported_ops.json, from op info .ini files.

The TF adapter places a node on the NPU only if its op type has an object entry in one of the
npu_supported_ops.json files it loads: for the new opp layout, one per vendor listed in
vendors/config.ini, at vendors/<vendor>/framework/tensorflow/ (Ascend/tensorflow,
tf_adapter/util/npu_ops_identifier.cc, GetCustomOpPath and IsNpuSupported). Per op it reads two
booleans: "isGray" (in mixed mode a gray op stays on the host) and "isHeavy" (performance-sensitive).
CANN's sample op projects build this file from the op info .ini (Ascend/samples,
cplusplus/level1_single_api/4_op_dev/1_custom_op/cmake/util/gen_ops_filter.sh): one entry per
[OpType] section, isGray false, isHeavy from the section's heavyOp.flag (false when absent). This
script does the same, for any number of sections per file, so the .ini stays the one place that
names our op types. Usage: python gen_npu_supported_ops.py OUT.json IN.ini [IN.ini ...]
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ini_to_json import ini_to_ops_info  # noqa: E402  (sibling script, also run by CMake)

_FLAGS = {"true": True, "false": False}


def npu_supported_ops(ini_paths):
    """{op_type: {"isGray": False, "isHeavy": bool}} for every op section of the .ini files."""
    supported = {}
    for op, entry in ini_to_ops_info(ini_paths).items():
        heavy = entry.get("heavyOp", {}).get("flag", "false")
        if heavy.lower() not in _FLAGS:
            raise ValueError("%s: heavyOp.flag: expected true or false, got %r" % (op, heavy))
        supported[op] = {"isGray": False, "isHeavy": _FLAGS[heavy.lower()]}
    return supported


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: gen_npu_supported_ops.py OUT.json IN.ini [IN.ini ...]")
    supported = npu_supported_ops(argv[2:])
    with open(argv[1], "w") as out:
        json.dump(supported, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main(sys.argv)
