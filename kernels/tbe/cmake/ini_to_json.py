"""Convert CANN op info .ini files into the aic-<soc>-ops-info.json the op compiler reads.

`[Op]` sections become objects; a key `a.b=v` becomes {"a": {"b": "v"}}. Usage:
python ini_to_json.py OUT.json IN.ini [IN.ini ...]
"""

import configparser
import json
import sys


def ini_to_ops_info(paths):
    info = {}
    for path in paths:
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.optionxform = str  # keys are case-sensitive (opFile, paramType)
        with open(path) as ini:  # ConfigParser.read would skip a missing file silently
            parser.read_file(ini)
        for op in parser.sections():
            if op in info:
                raise ValueError("%s: op %s defined twice" % (path, op))
            entry = info[op] = {}
            for key, value in parser.items(op):
                head, _, field = key.partition(".")
                entry.setdefault(head, {})[field] = value
    return info


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: ini_to_json.py OUT.json IN.ini [IN.ini ...]")
    with open(argv[1], "w") as out:
        json.dump(ini_to_ops_info(argv[2:]), out, indent=2, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv)
