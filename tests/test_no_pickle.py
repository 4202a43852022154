"""No code in this tree may deserialise by executing: pickle and its relatives, eval, unsafe YAML.

The scan parses each Python file and inspects imports and calls, so a method that happens to be
called ``eval`` (``module.eval()``) or a mention in a docstring or comment is not flagged, while
a multi-line ``torch.load(...)`` call is checked as a whole.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("forecaster", "service", "benchmarks", "tests")
THIS = Path(__file__).resolve()

BANNED_MODULES = {
    "pickle": "pickle executes code while loading",
    "cPickle": "pickle executes code while loading",
    "_pickle": "pickle executes code while loading",
    "dill": "dill is pickle",
    "cloudpickle": "cloudpickle is pickle",
    "joblib": "joblib loads pickles",
    "shelve": "shelve stores pickles",
}
BANNED_CALLS = {
    "pickle.load": "pickle executes code while loading",
    "pickle.loads": "pickle executes code while loading",
    "pickle.Unpickler": "pickle executes code while loading",
    "marshal.load": "marshal.load(s) can build code objects",
    "marshal.loads": "marshal.load(s) can build code objects",
    "yaml.unsafe_load": "unsafe YAML constructs arbitrary objects",
    "yaml.full_load": "full YAML constructs arbitrary objects",
    "read_pickle": "pandas.read_pickle unpickles",
    "eval": "eval executes code",
    "exec": "exec executes code",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _dotted(node: ast.AST) -> str:
    """'a.b.c' for a Name/Attribute chain, '' otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _call_problem(call: ast.Call) -> str | None:
    name = _dotted(call.func)
    if name in BANNED_CALLS:
        return f"{name}(): {BANNED_CALLS[name]}"
    last = name.rsplit(".", 1)[-1]
    if last == "read_pickle" or name in ("builtins.eval", "builtins.exec"):
        return f"{name}(): {BANNED_CALLS[last]}"
    if last == "load" and name.split(".")[0] in ("np", "numpy", "jnp"):
        allow = _keyword(call, "allow_pickle")
        if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
            return f"{name}(allow_pickle=...): numpy unpickles object arrays"
    if name == "yaml.load":
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        loader_name = _dotted(loader).rsplit(".", 1)[-1] if loader is not None else ""
        if loader_name not in SAFE_YAML_LOADERS:
            return "yaml.load() without SafeLoader: constructs arbitrary objects"
    if name == "torch.load" and not _is_true(_keyword(call, "weights_only")):
        return "torch.load() without weights_only=True: unpickles arbitrary objects"
    return None


def _import_problems(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.ImportFrom):
        modules = [node.module or ""]
        if node.module in ("pandas", "marshal", "yaml"):
            modules += [f"{node.module}.{a.name}" for a in node.names]
    else:
        modules = [a.name for a in node.names]
    for module in modules:
        root = module.split(".")[0]
        if root in BANNED_MODULES:
            yield f"import {module}: {BANNED_MODULES[root]}"
        elif module in ("pandas.read_pickle", "marshal.loads", "marshal.load", "yaml.unsafe_load"):
            yield f"import {module}: {BANNED_CALLS.get(module, 'unsafe deserialiser')}"


def scan_source(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, problem) for each unsafe import or call in ``source``."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as err:
        return [(err.lineno or 0, f"cannot parse: {err.msg}")]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            problems += [(node.lineno, p) for p in _import_problems(node)]
        elif isinstance(node, ast.Call) and (problem := _call_problem(node)):
            problems.append((node.lineno, problem))
    return sorted(problems)


def _python_files() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            if path.resolve() != THIS and ".venv" not in path.parts:
                yield path


def test_no_unsafe_deserialisation_in_the_tree() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}: {problem}"
        for path in _python_files()
        for line, problem in scan_source(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not found, "unsafe deserialisation:\n" + "\n".join(found)


def test_the_scan_covers_the_package() -> None:
    scanned = {p.relative_to(REPO).as_posix() for p in _python_files()}
    package = {"forecaster/registry/artifacts.py", "forecaster/registry/registry.py"}
    assert {*package, "tests/registry/test_artifacts.py"} <= scanned


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import pickle", 1),
        ("import os, pickle as p", 1),
        ("from pickle import loads", 1),
        ("import cloudpickle", 1),
        ("import dill", 1),
        ("from joblib import load", 1),
        ("x = 1\ndata = pickle.loads(b)", 2),
        ("np.load(f, allow_pickle=True)", 1),
        ("numpy.load(\n  f,\n  allow_pickle=flag)", 1),
        ("yaml.load(text)", 1),
        ("yaml.load(text, Loader=yaml.Loader)", 1),
        ("yaml.unsafe_load(text)", 1),
        ("torch.load(path)", 1),
        ("torch.load(\n  path,\n  weights_only=False,\n)", 1),
        ("marshal.loads(code)", 1),
        ("eval('1 + 1')", 1),
        ("exec(code)", 1),
        ("df = pd.read_pickle(path)", 1),
        ("from pandas import read_pickle", 1),
    ],
)
def test_scanner_flags(source: str, line: int) -> None:
    problems = scan_source(source)
    assert problems and problems[0][0] == line, problems


@pytest.mark.parametrize(
    "source",
    [
        "np.load(f)",
        "np.load(f, allow_pickle=False)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.safe_load(text)",
        "torch.load(path, weights_only=True)",
        "model.eval()",
        "'''never call pickle.load or eval() here'''  # nor yaml.load(",
        "import pickletools",
        "safetensors.numpy.load(data)",
    ],
)
def test_scanner_allows(source: str) -> None:
    assert scan_source(source) == []
