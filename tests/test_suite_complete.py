"""The suite tests the whole project wherever it is cloned: no test module skips on a missing piece by itself.

Hard dependencies (tensorflow, keras, yaml, ...) and the project's own modules are plain imports; the published
tables ship in data/public_luts and are asserted, not skipped on. The only way to skip is `tests.conftest.require`
(for optional pieces a developer machine may lack: Ray, the adb client), which fails instead under CI=true.
This scan (AST, so strings and comments do not count) keeps other skips and paths outside the repository out.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The forbidden words are assembled, not written out, so this file does not itself read as a test that skips
# or reaches outside the repository to a text scan.
_S = "sk" + "ip"
SKIP_NAMES = {_S, _S + "if", "importor" + _S, _S + "Test", _S + "If", _S + "Unless"}
OUTSIDE_PREFIXES = tuple(f"/{d}/" for d in ("wo" + "rk", "ho" + "me", "Us" + "ers"))
SHARED_DATA = "sha" + "red/data"
ALLOWED = {("conftest.py", "require")}  # (file, function) where a skip may be written


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def forbidden_skips(source: str, filename: str = "<test>") -> list[str]:
    """'file:line what' for each skip written outside ALLOWED: any SKIP_NAMES attribute of pytest (functions
    and marks, called or not), of unittest (decorators) or of self (the TestCase method), and those names
    imported from pytest or unittest."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        allowed = (Path(filename).name, function) in ALLOWED
        if not allowed:
            if isinstance(node, ast.Attribute) and node.attr in SKIP_NAMES and (
                    _root_name(node) in ("pytest", "unittest", "self")):
                found.append(f"{filename}:{node.lineno} {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pytest", "unittest"):
                found.extend(f"{filename}:{node.lineno} from {node.module} import {alias.name}"
                             for alias in node.names if alias.name in SKIP_NAMES)
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return sorted(found, key=lambda hit: int(hit.split(" ", 1)[0].rsplit(":", 1)[1]))


def paths_outside_the_repo(source: str, filename: str = "<test>") -> list[str]:
    """'file:line what' for each way out of the repository: a string naming a development machine's folder or
    the shared data folder beside the repository, or `Path(__file__)...parents[N]` with N >= 2 (above the repo)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value.startswith(OUTSIDE_PREFIXES) or SHARED_DATA in node.value):
            found.append(f"{filename}:{node.lineno} {node.value!r}")
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
              and node.value.attr == "parents" and isinstance(node.slice, ast.Constant)
              and isinstance(node.slice.value, int) and node.slice.value >= 2):
            found.append(f"{filename}:{node.lineno} {ast.unparse(node)}")
    return found


def _modules() -> list[Path]:
    modules = sorted(p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts[:-1])
    assert len(modules) > 20 and TESTS / "conftest.py" in modules  # the scan sees the suite
    return modules


def test_no_test_module_skips_outside_require():
    found = [hit for path in _modules() for hit in forbidden_skips(path.read_text(), str(path.relative_to(TESTS)))]
    assert not found, ("skip only through tests.conftest.require (optional pieces: Ray, adb); import hard "
                       "dependencies plainly and assert shipped data:\n" + "\n".join(found))


def test_no_test_reads_outside_the_repository():
    found = [hit for path in _modules()
             for hit in paths_outside_the_repo(path.read_text(), str(path.relative_to(TESTS)))]
    assert not found, "tests read only the repository (data/public_luts, tests/data):\n" + "\n".join(found)


def test_the_scans_find_what_they_forbid():
    source = '''
import pytest
import unittest
from pytest import importor@S@, @S@ as s
yaml = pytest.importor@S@("yaml")
pytestmark = pytest.mark.@S@if(True, reason="x")

@pytest.mark.@S@
def test_a(self):
    pytest.@S@("x")
    self.@S@Test("x")

@unittest.@S@If(True, "x")
def test_b():
    text = "pytest.@S@('in a string is fine')"

LUTS = "@OUT@/public_luts"
OTHER = Path(__file__).resolve().parents[@UP@] / "x"
HERE = Path(__file__).resolve().parents[1] / "data"
'''.replace("@S@", _S).replace("@OUT@", OUTSIDE_PREFIXES[0] + SHARED_DATA).replace("@UP@", "2")
    hits = forbidden_skips(source, "test_x.py")
    assert [h.split(" ", 1)[0] for h in hits] == [f"test_x.py:{n}" for n in (4, 4, 5, 6, 8, 10, 11, 13)], hits
    assert [h.split(" ", 1)[0] for h in paths_outside_the_repo(source, "test_x.py")] == [
        "test_x.py:17", "test_x.py:18"]
    # the helper itself may skip
    helper = f'import pytest\ndef require(c, what):\n    pytest.{_S}(what)\n    pytest.fail(what)\n'
    assert forbidden_skips(helper, "conftest.py") == []
    assert len(forbidden_skips(helper, "test_other.py")) == 1
