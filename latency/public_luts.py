"""Import the published phone tables (OFA Note10, ProxylessNAS mobile) into a latency table file.

Both are YAML maps key -> stats in ms. OFA's keys are already ours (see `latency.opkeys`); ProxylessNAS's
differ in three ways, translated here so one predictor reads both:
  - `expand` is a ratio there; ours is the middle width: mid = round(in * ratio) (ProxylessNAS's rule);
  - its blocks are ReLU6 and carry no se/hs fields: they get `se:0-hs:0-act:relu6`; its Conv and Conv_1 get
    `act:relu6`;
  - its `Logits-input:7x7xC` times global pooling and the classifier together: the value goes to our
    `Logits-input:1x1xC` key and `AvgPool2D-input:7x7xC` gets 0 ms with a note, so the sum is unchanged.
The original key is kept in each entry's `extra.source_key`. Values: OFA {count, mean, std};
ProxylessNAS {count, mean, var} (std = sqrt(var)). Published tables have no median: predictions sum means.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from latency.store import Entry, TableStore
from mnas.errors import UserError

PUBLISHED_KIND = "published"
OFA_NOTE10 = {"kind": PUBLISHED_KIND, "model": "Samsung Galaxy Note10", "source": "OFA (han-cai/files ofa/note10)",
              "calibration": "identity"}
PROXYLESS_MOBILE = {"kind": PUBLISHED_KIND, "model": "ProxylessNAS mobile (Pixel-class)",
                    "source": "ProxylessNAS mobile_trim.yaml", "calibration": "identity"}


def default_luts_dir() -> Path:
    """Where the published tables live: $MNAS_PUBLIC_LUTS, else the repository's data/public_luts."""
    env = os.environ.get("MNAS_PUBLIC_LUTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data" / "public_luts"


def fingerprint_key(info: dict, resolution: int) -> str:
    """Same shape as `devices.base.Fingerprint.key` (kind:model:id), plus `@resolution`: a published table
    is one table per input resolution and the same op key has different values in each."""
    tag = "ofa-note10" if info.get("model") == OFA_NOTE10["model"] else "proxyless-mobile"
    return f"{info['kind']}:{info['model']}:{tag}@{resolution}".replace(" ", "_")


def table_resolution(data: dict, path: Path) -> int:
    """The input resolution a published table is for: its stem key's input size."""
    for key in data:
        if m := re.match(r"Conv-input:(\d+)x\d+x3-", str(key)):
            return int(m.group(1))
    raise UserError(f"{path}: no stem (Conv-input:RxRx3) entry; cannot tell the table's resolution")


def _load_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"cannot read latency YAML {path}: {err}") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path} is not a latency lookup table (expected a map of op key -> stats)")
    return data


def detect_format(data: dict, path: Path) -> str:
    """'ofa' (values have std, keys carry se/hs) or 'proxyless' (values have var)."""
    first = next(iter(data.values()))
    if not isinstance(first, dict) or "mean" not in first:
        raise UserError(f"{path} is not a latency lookup table (entries need a 'mean')")
    if "var" in first:
        return "proxyless"
    if "std" in first:
        return "ofa"
    raise UserError(f"{path}: entries have neither 'std' (OFA) nor 'var' (ProxylessNAS)")


_PROXYLESS_BLOCK = re.compile(
    r"expanded_conv-input:(\d+)x(\d+)x(\d+)-output:(\d+x\d+x\d+)-expand:([\d.]+)-kernel:(\d+)-stride:(\d+)"
    r"-idskip:([01])$")
_PROXYLESS_LOGITS = re.compile(r"Logits-input:(\d+)x(\d+)x(\d+)-output:(\d+)$")
_PROXYLESS_CONV = re.compile(r"(Conv|Conv_1)-input:(\S+)-output:(\S+)$")


def translate_proxyless_key(key: str) -> list[tuple[str, float]]:
    """A ProxylessNAS key -> [(our key, share of its value)]."""
    if m := _PROXYLESS_BLOCK.match(key):
        h, w, cin, out, ratio, k, s, idskip = m.groups()
        mid = int(round(int(cin) * float(ratio)))
        return [(f"expanded_conv-input:{h}x{w}x{cin}-output:{out}-expand:{mid}-kernel:{k}-stride:{s}"
                 f"-idskip:{idskip}-se:0-hs:0-act:relu6", 1.0)]
    if m := _PROXYLESS_LOGITS.match(key):
        h, w, c, n = m.groups()
        return [(f"AvgPool2D-input:{h}x{w}x{c}-output:1x1x{c}", 0.0), (f"Logits-input:1x1x{c}-output:{n}", 1.0)]
    if m := _PROXYLESS_CONV.match(key):
        return [(f"{m.group(1)}-input:{m.group(2)}-output:{m.group(3)}-act:relu6", 1.0)]
    raise UserError(f"unrecognised ProxylessNAS table key {key!r}")


def _entries(data: dict, fmt: str, path: Path) -> list[Entry]:
    rows: list[Entry] = []
    for key, stats in data.items():
        try:
            count, mean = int(stats["count"]), float(stats["mean"])
            spread = float(stats["std"]) if fmt == "ofa" else math.sqrt(float(stats["var"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: entry {key!r} lacks count/mean/{'std' if fmt == 'ofa' else 'var'}") from None
        if fmt == "ofa":
            rows.append(Entry(str(key), count, mean, None, spread, {"source_key": key}))
            continue
        for ours, share in translate_proxyless_key(str(key)):
            extra = {"source_key": key}
            if share == 0.0:
                extra["note"] = "timed inside the published Logits entry (pool + classifier)"
            rows.append(Entry(ours, count, mean * share, None, spread * share, extra))
    return rows


def import_yaml(yaml_path: str | Path, store: TableStore) -> tuple[str, int]:
    """Import one published YAML table into `store`; returns (fingerprint key, entries written)."""
    path = Path(yaml_path)
    data = _load_yaml(path)
    fmt = detect_format(data, path)
    info = dict(OFA_NOTE10 if fmt == "ofa" else PROXYLESS_MOBILE)
    info["resolution"] = table_resolution(data, path)
    key = fingerprint_key(info, info["resolution"])
    info["key"] = key
    info["file"] = path.name
    rows = _entries(data, fmt, path)
    store.add_fingerprint(key, info)
    store.put_many(key, rows)
    return key, len(rows)
