"""Parse the text printed by TFLite/LiteRT `benchmark_model` into typed numbers.

Every format listed in `shared/reference/benchmark_model.md` occurs in the wild, so the parser is driven by
line shapes rather than by one build's exact layout:

* timing lines `count=N first= curr= min= max= avg= std= [p5= median= p95=]` (any subset; `count=1 curr=X`
  and `curr=X(all same)` are what the tool prints for constant runs), with or without an `INFO: ` prefix;
  the last such line is the regular runs, an earlier one the warm-up;
* `Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...`;
* the oldest `Average inference timings in us: Warmup: ..., Init: ..., Inference: ...` (or `no stats: ...`);
* `Timings (microseconds): count=...` after an op-profiling table;
* op-profiling tables, old (with a `[start]` column) and newer (without), with TFLite-op or delegate rows
  (`Convolution (NHWC, QC8) IGEMM`). Only the "Run Order" rows of the regular-runs section are kept:
  "Top by Computation Time" repeats them sorted, "Summary by node type" aggregates them, and the
  "Benchmark Initialization" section times setup, not inference.

Numbers may be in scientific notation (`2.95034e+06`). Output that holds no timing at all raises
`BenchmarkOutputError` (a `UserError`) quoting the tool's own error lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.base import OpTiming
from mnas.errors import UserError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KEY_VALUE = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({NUMBER})")
_INFO_PREFIX = re.compile(r"^\s*(?:INFO|WARNING|VERBOSE):\s?")
_INFERENCE_TIMINGS = re.compile(r"inference timings in us:\s*(.*)$", re.IGNORECASE)
_NAMED_VALUE = re.compile(rf"([A-Za-z][A-Za-z ()]*?):\s*({NUMBER})")
_BANNER = re.compile(r"^=+\s*(.*?)\s*=+$")
_TABLE_NUMBER = rf"{NUMBER}%?"
_ERROR_LINE = re.compile(r"(error|fail|not found|denied|can't|cannot|invalid|abort)", re.IGNORECASE)


class BenchmarkOutputError(UserError):
    """`benchmark_model` printed no timing we can read (it failed, or this is not its output)."""


@dataclass(frozen=True)
class RunStats:
    """One `count=...` line: the tool's summary of a batch of runs, in microseconds."""

    count: int
    avg_us: float
    std_us: float = 0.0
    min_us: float | None = None
    max_us: float | None = None
    first_us: float | None = None
    curr_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None

    @property
    def has_percentiles(self) -> bool:
        return self.median_us is not None


@dataclass(frozen=True)
class BenchmarkOutput:
    """Everything one `benchmark_model` run reported. Times in microseconds unless the name says ms."""

    runs: RunStats  # the regular (measured) runs
    warmup: RunStats | None = None
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    ops: tuple[OpTiming, ...] | None = None  # Run Order rows of the regular runs, when op profiling was on

    @property
    def median_us(self) -> float:
        """The runs' median when the build prints percentiles, else their mean (old builds print no median)."""
        return self.runs.median_us if self.runs.median_us is not None else self.runs.avg_us

    @property
    def avg_ms(self) -> float:
        return self.runs.avg_us / 1000.0

    @property
    def median_ms(self) -> float:
        return self.median_us / 1000.0


def _strip_prefix(line: str) -> str:
    return _INFO_PREFIX.sub("", line.rstrip("\r\n"))


def parse_run_stats(line: str) -> RunStats | None:
    """Read a `count=...` line; None if the line has no `count=` or no time in it (`Memory (bytes): count=0`)."""
    values = {key: float(value) for key, value in _KEY_VALUE.findall(line)}
    if "count" not in values or int(values["count"]) <= 0:
        return None
    # `count=1 curr=X` and `count=N curr=X(all same)`: every run took X.
    avg = values.get("avg", values.get("curr"))
    if avg is None:
        return None
    constant = "avg" not in values
    return RunStats(
        count=int(values["count"]), avg_us=avg, std_us=values.get("std", 0.0),
        min_us=values.get("min", avg if constant else None), max_us=values.get("max", avg if constant else None),
        first_us=values.get("first", avg if constant else None), curr_us=values.get("curr"),
        p5_us=values.get("p5", avg if constant else None), median_us=values.get("median", avg if constant else None),
        p95_us=values.get("p95", avg if constant else None),
    )


def _parse_named_values(text: str) -> dict[str, float]:
    return {name.strip().lower(): float(value) for name, value in _NAMED_VALUE.findall(text)}


def _table_row_pattern(n_numbers: int) -> re.Pattern[str]:
    # node type (may hold spaces, commas, parentheses), then exactly n numeric columns, then the name.
    numbers = r"\s+".join(f"({_TABLE_NUMBER})" for _ in range(n_numbers))
    return re.compile(rf"^\s*(?P<type>\S.*?)\s+{numbers}\s+(?P<name>\S.*?)\s*$")


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def _parse_op_rows(lines: list[str], header: str) -> list[OpTiming]:
    """Rows under one table header, until a blank line or the next `====` banner."""
    has_start = "[start]" in header
    pattern = _table_row_pattern(7 if has_start else 6)
    ops: list[OpTiming] = []
    for line in lines:
        if not line.strip() or _BANNER.match(line.strip()):
            break
        match = pattern.match(line)
        if not match:
            continue
        cells = [_number(c) for c in match.groups()[1:-1]]
        if has_start:
            cells = cells[1:]  # drop [start]
        first_ms, avg_ms, percent, _cdf, _mem_kb, times_called = cells
        name = match.group("name")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        ops.append(OpTiming(node_type=match.group("type").strip(), name=name, avg_ms=avg_ms,
                            first_ms=first_ms, percent=percent, times_called=int(times_called)))
    return ops


def _regular_section(lines: list[str]) -> list[str]:
    """The lines of the op-profiling section for the regular runs (the whole output for old builds)."""
    starts = [i for i, line in enumerate(lines) if "Profiling Info for" in line]
    if not starts:
        return lines
    for pos, start in enumerate(starts):
        if "Regular" in lines[start]:
            end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
            return lines[start:end]
    # Sections exist but none is named "Regular": keep everything that is not initialization.
    keep: list[str] = []
    bounds = starts + [len(lines)]
    for start, end in zip(bounds, bounds[1:]):
        if "Initialization" not in lines[start]:
            keep.extend(lines[start:end])
    return keep


def parse_op_table(lines: list[str]) -> tuple[OpTiming, ...] | None:
    """The Run Order rows of the regular-runs section; None when the output has no op table."""
    section = _regular_section(lines)
    headers = [i for i, line in enumerate(section) if "[node type]" in line]
    if not headers:
        return None
    # Prefer the table under a "Run Order" banner; the compact form has no banner, so take the first header.
    chosen = headers[0]
    for i in headers:
        previous = section[i - 1].strip() if i > 0 else ""
        banner = _BANNER.match(previous)
        if banner and banner.group(1).lower() == "run order":
            chosen = i
            break
    return tuple(_parse_op_rows(section[chosen + 1:], section[chosen]))


def parse(text: str) -> BenchmarkOutput:
    """Parse one run of `benchmark_model`. Raises `BenchmarkOutputError` when it holds no timing."""
    lines = [_strip_prefix(line) for line in text.splitlines()]
    count_lines: list[RunStats] = []
    profiler_lines: list[RunStats] = []
    named: dict[str, float] = {}
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Memory (bytes)"):
            continue
        timings = _INFERENCE_TIMINGS.search(stripped)
        if timings:
            named.update(_parse_named_values(timings.group(1)))
            continue
        if "count=" in stripped:
            stats = parse_run_stats(stripped)
            if stats is None:
                continue
            (profiler_lines if stripped.startswith("Timings (microseconds)") else count_lines).append(stats)

    if count_lines:
        runs = count_lines[-1]
        warmup = count_lines[-2] if len(count_lines) > 1 else None
    elif profiler_lines:
        runs, warmup = profiler_lines[-1], None
    elif "inference (avg)" in named or "inference" in named or "no stats" in named:
        avg = named.get("inference (avg)", named.get("inference", named.get("no stats")))
        runs, warmup = RunStats(count=0, avg_us=avg), None
    else:
        raise BenchmarkOutputError(_failure_message(lines))

    inference_avg = named.get("inference (avg)", named.get("inference", named.get("no stats")))
    return BenchmarkOutput(
        runs=runs, warmup=warmup,
        init_us=named.get("init"),
        first_us=named.get("first inference"),
        warmup_avg_us=named.get("warmup (avg)", named.get("warmup")),
        inference_avg_us=inference_avg,
        ops=parse_op_table(lines),
    )


def _failure_message(lines: list[str]) -> str:
    errors = [line.strip() for line in lines if _ERROR_LINE.search(line)]
    if errors:
        return "benchmark_model failed: " + " | ".join(errors[:3])[:400]
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first:
        return "benchmark_model printed nothing (no timing line found)"
    return f"no benchmark_model timing line in its output (first line: {first[:120]!r})"


def parse_file(path) -> BenchmarkOutput:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse(handle.read())
