"""Every command README.md shows works as written, as far as can be checked cheaply: each tool
(`python -m X`, a console script, a launcher script) accepts `--help` and lists every flag the
command passes it, each `make` target exists, and every repository path, link and anchor the
README names exists. Nothing long runs: only `--help`."""

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

# Commands are fenced blocks of these languages; inline code spans that start like a command
# count too (`make bench`, `.venv/bin/pip install -r requirements-torch.txt`).
SHELL_LANGUAGES = ("sh", "bash", "shell", "console")
INLINE_COMMAND = re.compile(r"^(\.venv/bin/)?(python3?|pip) |^make [\w-]+$|^scripts/\S+\.sh( |$)")
PYTHONS = ("python", "python3", ".venv/bin/python")
PIPS = ("pip", ".venv/bin/pip")
# Programs that are not ours: only the paths they are given are checked.
EXTERNAL_PROGRAMS = ("cmake", "source") + PIPS
# Launchers that pass their options on to a tool, and the arguments before those options.
LAUNCHERS = {
    "scripts/run_multiworker.sh": ("edvr.train", 1),
    "scripts/run_8p_train.sh": ("edvr.train", 2),
}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = ("&&", "||", ";", "|")


def readme_text():
    with open(README, encoding="utf-8") as f:
        return f.read()


def fenced_blocks(text):
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def prose(text):
    """The text outside fenced code blocks."""
    return re.sub(r"^```\w*\n.*?^```", "", text, flags=re.S | re.M)


def inline_spans(text):
    return re.findall(r"`([^`\n]+)`", prose(text))


def commands(text):
    """Every shell command the README shows: the lines of its shell blocks (continuations
    joined) and the inline code spans that start like a command."""
    found = []
    for language, body in fenced_blocks(text):
        if language in SHELL_LANGUAGES:
            found += [
                line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()
            ]
    found += [span for span in inline_spans(text) if INLINE_COMMAND.match(span)]
    return found


def simple_commands(command):
    """The token lists of the simple commands in ``command`` (split at && ; |), comments
    dropped and optional groups' brackets removed: `[--tile N]` -> `--tile`, `N`."""
    tokens = [token.strip("[]") for token in shlex.split(command, comments=True)]
    parts, current = [], []
    for token in tokens:
        if token in SEPARATORS:
            parts.append(current)
            current = []
        elif token:
            current.append(token)
    return [part for part in parts + [current] if part]


def flags(tokens):
    return [token.split("=", 1)[0] for token in tokens if re.match(r"^--?[A-Za-z]", token)]


def console_scripts():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    return {name: target.split(":")[0] for name, target in scripts.items()}


def make_targets():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        return set(re.findall(r"^([\w.-]+):", f.read(), flags=re.M))


def classify(tokens):
    """What a simple command runs: ('tool', module, its arguments), ('make', targets),
    ('script', path, None), ('external', program, arguments) or ('unknown', program, None)."""
    while tokens and ENV_ASSIGNMENT.match(tokens[0]):
        tokens = tokens[1:]
    program, args = tokens[0], tokens[1:]
    if program in PYTHONS and args[:1] == ["-m"]:
        module = args[1]
        return ("external", module, args[2:]) if module == "pytest" else ("tool", module, args[2:])
    if program in PYTHONS:
        return ("external", program, args)  # python setup.py ...: its paths are checked
    if program in console_scripts():
        return ("tool", console_scripts()[program], args)
    if program == "make":
        return ("make", args, None)
    if program in LAUNCHERS:
        module, positional = LAUNCHERS[program]
        return ("tool", module, args[positional:])
    if "/" in program and not program.startswith("/"):
        return ("script", program, None)
    if program in EXTERNAL_PROGRAMS:
        return ("external", program, args)
    return ("unknown", program, None)


def tool_modules(text):
    modules = set()
    for command in commands(text):
        for tokens in simple_commands(command):
            kind, module, _ = classify(tokens)
            if kind == "tool" and "<" not in module:
                modules.add(module)
    return sorted(modules)


# `python -m MODULE --help` for every module in one interpreter: most import TensorFlow, which
# then loads once instead of once per tool (seconds each on a loaded 2-core machine).
HELP_RUNNER = r"""
import contextlib, io, json, runpy, sys
results = {}
for module in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [module, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException as error:
            code, err = 1, io.StringIO(repr(error))
    results[module] = {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps():
    """module -> {returncode, stdout, stderr} of `python -m module --help`."""
    modules = tool_modules(readme_text())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", HELP_RUNNER] + modules,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def mentions(help_text, flag):
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", help_text) is not None


COMMANDS = commands(readme_text())


def test_the_readme_shows_commands_of_every_kind():
    """The extraction itself: if it found nothing, every test below would pass vacuously."""
    kinds = {classify(tokens)[0] for command in COMMANDS for tokens in simple_commands(command)}
    assert {"tool", "make", "script", "external"} <= kinds, kinds
    assert {"edvr.train", "edvr.infer", "edvr.evaluate", "edvr.convert", "edvr.freeze"} <= set(
        tool_modules(readme_text())
    )


def test_commands_are_in_fenced_blocks_where_this_test_reads_them():
    """An indented code block would hide its commands from these tests."""
    indented = [
        line
        for line in prose(readme_text()).splitlines()
        if re.match(r"^ {4,}(\.venv/|python|make |scripts/|pip |edvr-)", line)
    ]
    assert not indented, "put commands in ```sh blocks: %s" % indented


@pytest.mark.parametrize("command", COMMANDS)
def test_command_runs_a_known_tool_with_flags_it_accepts(command, helps):
    for tokens in simple_commands(command):
        kind, what, args = classify(tokens)
        assert kind != "unknown", (
            "%r runs %r, which tests/test_readme.py does not know how to check" % (command, what)
        )
        if kind == "make":
            missing = [target for target in what if target not in make_targets()]
            assert not missing, "%r: no such make target %s" % (command, missing)
        elif kind == "script":
            path = os.path.join(ROOT, what)
            assert os.path.isfile(path) and os.access(path, os.X_OK), (
                "%r: %s is not an executable file of the repository" % (command, what)
            )
        elif kind == "tool" and "<" not in what:
            result = helps[what]
            assert result["returncode"] == 0 and "usage" in result["stdout"].lower(), (
                "%r: python -m %s --help exited %s:\n%s"
                % (command, what, result["returncode"], result["stderr"][-3000:])
            )
            unknown = [flag for flag in flags(args) if not mentions(result["stdout"], flag)]
            assert not unknown, "%r: python -m %s --help does not list %s" % (
                command,
                what,
                unknown,
            )


def test_every_flag_the_prose_names_belongs_to_a_tool_or_command_shown(helps):
    """`--no_feature_cache`, `--precision mixed|fp32`, ... in the text: some tool shown lists
    each, or a command shown passes it to another program (pip's `--no-build-isolation`).
    Single-dash options in the text are the compiler's (`-march=native`), not checked."""
    text = readme_text()
    known = "\n".join(result["stdout"] for result in helps.values())
    external = {
        flag
        for command in COMMANDS
        for tokens in simple_commands(command)
        for flag in flags(tokens)
        if classify(tokens)[0] != "tool"
    }
    named = {
        flag
        for span in inline_spans(text)
        if not INLINE_COMMAND.match(span)
        for flag in flags(span.split())
        if flag.startswith("--")
    }
    unknown = sorted(
        flag
        for flag in named
        if flag != "--help" and flag not in external and not mentions(known, flag)
    )
    assert not unknown, "the README names flags no tool shown lists: %s" % unknown


def tracked_top_level():
    listing = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {path.split("/")[0] for path in listing}


def is_ignored(path):
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def repository_paths(text):
    """Paths the README names inside the repository: tokens of commands and code spans whose
    first component is a tracked top-level file or folder (not `.venv/`, `runs/`, `data/`)."""
    tops = tracked_top_level()
    candidates = set(inline_spans(text))
    for command in COMMANDS:
        for tokens in simple_commands(command):
            candidates.update(tokens)
    paths = set()
    for candidate in candidates:
        for token in candidate.split():
            token = token.rstrip(",;:.)").strip("'\"(")
            if re.search(r"[<>{}*|%$]", token) or token.startswith(("/", "-", "http")):
                continue  # placeholders, patterns, absolute paths, flags, URLs
            first = token.split("/")[0]
            if first in tops and ("/" in token or "." in token):
                paths.add(token)
    return sorted(paths)


def test_every_repository_path_named_exists():
    paths = repository_paths(readme_text())
    assert "configs/edvr_m.yaml" in paths and "kernels/tbe/tbe/impl" in paths, paths
    # A missing path that git ignores is a build product (ops/_edvr_ops.so before `make build`).
    missing = [
        path
        for path in paths
        if not os.path.exists(os.path.join(ROOT, path)) and not is_ignored(path)
    ]
    assert not missing, "the README names paths that do not exist: %s" % missing


def heading_anchors(markdown):
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", prose(markdown), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_link_and_anchor_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", readme_text())
    local = [link for link in links if not re.match(r"^[a-z]+://", link)]
    assert local, links
    for link in local:
        path, _, anchor = link.partition("#")
        target = os.path.join(ROOT, path) if path else README
        assert os.path.exists(target), "README links to %s, which does not exist" % link
        if anchor:
            with open(target, encoding="utf-8") as f:
                anchors = heading_anchors(f.read())
            assert anchor in anchors, (
                "README links to %s: no heading of %s has that anchor (%s)"
                % (link, path or "README.md", sorted(anchors))
            )
