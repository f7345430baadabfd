"""Small helpers shared by the command modules: JSON output and argument checks."""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; numpy scalars are not JSON-serialisable.
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(payload: Any) -> None:
    json.dump(_clean(payload), sys.stdout, indent=2)
    sys.stdout.write("\n")
