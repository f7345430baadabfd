"""Architecture files: a network as a JSON or YAML document of block strings plus global params.

    {"name": "my-net",
     "blocks": ["r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", ...],
     "stem_filters": 32, "head_filters": 1280, "resolution": 224, "activation": "relu", ...}

Every key but `name` and `blocks` is a `ModelSpec` field and optional (its default applies); unknown
keys are errors, so a typo never passes silently. The format is documented in docs/archfile.md.
`resolve_arch` is the one entry point the CLI uses for "NAME|ARCH_FILE": a zoo name, an architecture
file, or OFA's MobileNetV3 `net.config` JSON (recognised by its `first_conv` key).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from mnas import zoo
from mnas.blocks import BlockStringError
from mnas.errors import UnknownNameError, UserError
from mnas.spec import ModelSpec

ARCH_SUFFIXES = (".json", ".yaml", ".yml", ".config")  # .config: OFA's net.config (JSON)
_JSON_SUFFIXES = (".json", ".config")
# Global params an architecture file may set, with the Python types each accepts.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {}
for _f in dataclasses.fields(ModelSpec):
    if _f.name in ("name", "blocks", "extra"):
        continue
    _default = _f.default
    if isinstance(_default, bool):
        _FIELD_TYPES[_f.name] = (bool,)
    elif isinstance(_default, int):
        _FIELD_TYPES[_f.name] = (int,)
    elif isinstance(_default, float):
        _FIELD_TYPES[_f.name] = (int, float)
    elif _f.name == "stages":  # a list of block-string counts per stage, or null
        _FIELD_TYPES[_f.name] = (list, type(None))
    else:  # str, or str | None
        _FIELD_TYPES[_f.name] = (str, type(None))


INFO_KEYS = ("search",)  # written for people (where a file came from, how it did); not part of the spec


def spec_from_dict(data: Any, source: str = "architecture") -> ModelSpec:
    """Validate a parsed architecture document and build its ModelSpec; UserError names the problem."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with 'name' and 'blocks', got {type(data).__name__}")
    blocks = data.get("blocks")
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, str) for b in blocks):
        raise UserError(f"{source}: 'blocks' must be a non-empty list of block strings")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise UserError(f"{source}: 'name' must be a non-empty string")
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("name", "blocks") or key in INFO_KEYS:
            continue
        if key not in _FIELD_TYPES:
            raise UserError(f"{source}: unknown key {key!r}; known: name, blocks, {', '.join(_FIELD_TYPES)}")
        types = _FIELD_TYPES[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise UserError(f"{source}: {key!r} must be {wanted}, got {value!r}")
        params[key] = value
    try:
        return ModelSpec.from_strings(name, blocks, **params)
    except BlockStringError as err:
        raise BlockStringError(f"{source}: {err}") from None


def spec_to_dict(spec: ModelSpec) -> dict:
    """The architecture document of `spec` (every global param written out)."""
    return {"name": spec.name, "blocks": spec.block_strings(), **spec.global_params()}


def _parse(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"architecture file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read architecture file {path}: {err}") from None
    if path.suffix.lower() in _JSON_SUFFIXES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"malformed JSON in {path}: {err.msg} at line {err.lineno} column {err.colno}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "parse error"
        raise UserError(f"malformed YAML in {path}: {problem}{where}") from None


def _looks_like_ofa(data: Any) -> bool:
    return (isinstance(data, dict) and "first_conv" in data and isinstance(data.get("blocks"), list)
            and all(isinstance(b, dict) for b in data["blocks"]))


def load_arch_file(path: str | Path) -> ModelSpec:
    """An architecture file (JSON/YAML), or an OFA MobileNetV3 net.config JSON, as a ModelSpec."""
    path = Path(path)
    if path.suffix.lower() not in ARCH_SUFFIXES:
        raise UserError(f"architecture file must end in {', '.join(ARCH_SUFFIXES)}: {path}")
    data = _parse(path)
    if _looks_like_ofa(data):
        from mnas import ofa_config

        return ofa_config.load_ofa_net_config(path)  # also reads the resolution from run.config
    return spec_from_dict(data, str(path))


def save_arch_file(spec: ModelSpec, path: str | Path, search: dict | None = None) -> Path:
    """Write `spec` as JSON or YAML (by the file's suffix); `load_arch_file` reads it back equal. `search`: what
    a search measured of it (kept under that key, ignored when the file is loaded)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise UserError(f"architecture file must end in .json, .yaml or .yml: {path}")
    document = spec_to_dict(spec)
    if search is not None:
        document["search"] = search
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        path.write_text(json.dumps(document, indent=2) + "\n")
    else:
        import yaml

        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def resolve_arch(ref: str, **overrides: Any) -> ModelSpec:
    """"NAME|ARCH_FILE" -> ModelSpec, with global-param overrides (None values are ignored)."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(_FIELD_TYPES)
    if unknown:
        raise UserError(f"unknown architecture parameter(s): {', '.join(sorted(unknown))}")
    if ref.lower() in zoo.names():
        spec = zoo.get(ref)
    elif Path(ref).suffix.lower() in ARCH_SUFFIXES or Path(ref).exists() or "/" in ref:
        spec = load_arch_file(ref)
    else:
        raise UnknownNameError("model", ref, zoo.names())
    return spec.replace(**changes) if changes else spec
