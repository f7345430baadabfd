"""The layering the README states, enforced: the core (errors, block grammar, spec, costs, zoo, arch files,
the registry and the progress bar) is pure and imports nothing else of the project; devices/ and latency/ import
only the core of mnas, never the search side; the core and the search-space/reward/controller modules import no
TensorFlow at module level."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = {"mnas", "mnas.errors", "mnas.registry", "mnas.progress", "mnas.blocks", "mnas.spec", "mnas.ops", "mnas.costs",
        "mnas.zoo", "mnas.archfile", "mnas.ofa_config"}
TF_FREE = CORE | {"mnas.reward", "mnas.band", "mnas.baselines", "mnas.pareto", "mnas.runstore", "mnas.data"}
TF_FREE_PACKAGES = ("mnas.spaces", "mnas.controllers")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import in `path` (`from mnas import zoo` -> mnas.zoo)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}" if node.module == "mnas" else node.module, node.lineno)
                    for a in node.names]
    return out


def _files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((REPO / pkg).rglob("*.py"))]


def _project(name: str) -> bool:
    return name.split(".")[0] in ("mnas", "latency", "devices")


def test_edges_import_only_the_core_of_mnas():
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p in _files("devices", "latency")
           for name, line in _imports(p) if name.split(".")[0] == "mnas" and name not in CORE]
    assert not bad, "devices/ and latency/ may import only the mnas core:\n" + "\n".join(bad)


def test_the_core_imports_nothing_else_of_the_project():
    core_files = [p for p in _files("mnas") if _module(p) in CORE]
    assert len(core_files) == len(CORE), sorted(_module(p) for p in core_files)
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p in core_files
           for name, line in _imports(p) if _project(name) and name not in CORE]
    assert not bad, "the core must stay pure:\n" + "\n".join(bad)


def test_the_core_and_the_search_logic_import_no_tensorflow_at_module_level():
    files = [p for p in _files("mnas") if _module(p) in TF_FREE or _module(p).startswith(TF_FREE_PACKAGES)]
    assert len(files) > len(TF_FREE)
    bad = [f"{p.relative_to(REPO)}:{line} imports {name}" for p in files
           for name, line in _imports(p, top_level_only=True) if name.split(".")[0] in ("tensorflow", "keras")]
    assert not bad, "\n".join(bad)


def test_the_scan_sees_violations():
    """The checks above would catch a violation (a scan that finds nothing is no check)."""
    fake = REPO / "latency" / "_layering_probe.py"
    assert not fake.exists()
    source = "from mnas import search\nfrom mnas.controllers import ppo\nimport tensorflow as tf\n"
    tree_names = [n for n, _ in _imports_from_text(source)]
    assert tree_names == ["mnas.search", "mnas.controllers", "tensorflow"]
    assert [n for n in tree_names if n.split(".")[0] == "mnas" and n not in CORE] == ["mnas.search",
                                                                                      "mnas.controllers"]


def _imports_from_text(source: str) -> list[tuple[str, int]]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
    try:
        return _imports(Path(fh.name))
    finally:
        Path(fh.name).unlink()


# -- commands: parse, call the library, print ----------------------------------------------------------
COMMANDS = "mnas.commands"
SHARED_COMMAND_MODULE = "mnas.commands._common"


def _command_imports(source: str, module: str) -> list[tuple[str, int]]:
    """(module, line) for every import of `mnas.commands...` in `source` (of `module`), relative ones resolved
    and `from mnas.commands import x` read as mnas.commands.x."""
    package = module.split(".")
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] if base == COMMANDS else [base]
        else:
            continue
        out += [(n, node.lineno) for n in names if n == COMMANDS or n.startswith(COMMANDS + ".")]
    return out


def _command_violations(path: Path) -> list[str]:
    module = _module(path)
    in_commands = module.startswith(COMMANDS + ".")
    return [f"{path.relative_to(REPO)}:{line} imports {name}"
            for name, line in _command_imports(path.read_text(), module)
            if not (in_commands and name == SHARED_COMMAND_MODULE)]


def test_commands_import_no_other_command_and_the_library_no_command():
    """A command shares code with another only through mnas.commands._common; no library module (mnas outside
    the commands and the CLI entry point, latency/, devices/) imports a command."""
    commands = _files("mnas/commands")
    assert len(commands) >= 8
    library = [p for p in _files("mnas", "latency", "devices")
               if not _module(p).startswith(COMMANDS) and _module(p) != "mnas.cli"]
    assert len(library) > 40
    bad = [v for p in commands + library for v in _command_violations(p)]
    assert not bad, "commands may import only mnas.commands._common; the library no command:\n" + "\n".join(bad)


def test_the_command_scan_sees_violations():
    source = ("from mnas.commands._common import emit\nfrom mnas.commands import scale\nfrom . import farm\n"
              "from .table import build\nimport mnas.commands.devices\nfrom mnas.scaling import scale\n")
    found = [n for n, _ in _command_imports(source, "mnas.commands.search")]
    assert found == [SHARED_COMMAND_MODULE, "mnas.commands.scale", "mnas.commands.farm", "mnas.commands.table",
                     "mnas.commands.devices"]
    assert [n for n, _ in _command_imports("from .commands import scale\n", "mnas.search")] == ["mnas.commands.scale"]
