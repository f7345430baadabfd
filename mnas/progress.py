"""The one progress bar of the project: rich, always on stderr (stdout stays clean for `--json`).

Core-pure (only rich): devices/, latency/ and the search side all use it, so every long job looks alike.
"""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool = True, label: str | None = None, eta: bool = False) -> Any:
    """A `rich.progress.Progress` (use as a context manager, `add_task(description, total=...)`).

    label: a fixed text before the bar, the task's description then follows the counts (e.g. the best reward);
    without one, the description leads. eta: add the estimated time left (jobs of known length)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns: list = [TextColumn(label) if label else TextColumn("{task.description}"), BarColumn(),
                     MofNCompleteColumn(), TimeElapsedColumn()]
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    if label:
        columns.append(TextColumn("{task.description}"))
    return Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False)
