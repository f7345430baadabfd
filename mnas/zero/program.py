"""Programs: three component functions of typed instructions, their readable text form and its parser.

The text is what the reference prints (`Algorithm::ToReadable`), with every constant written in full
(`repr`), so a printed program parses back to the very same program:

    # memory: scalars=4 vectors=3 matrices=1
    def Setup():
      s2 = 0.001
    def Predict():
      s1 = dot(v0, v1)
    def Learn():
      s3 = s0 - s1
      ...

Bad input is one line (`mnas.errors.UserError`) naming the file, the line and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnas.errors import UserError
from mnas.zero.ops import CONST_M, CONST_V, KIND_PREFIX, NONE, OPS, Op

FUNCTIONS = ("Setup", "Predict", "Learn")
_NUMBER = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan)"
_ADDRESS = r"[svm]\d+"
_PLACEHOLDER = re.compile(r"\{(o|a|b|d0|d1|d2)\}")
_MEMORY_LINE = re.compile(r"#\s*memory:\s*scalars=(\d+)\s+vectors=(\d+)\s+matrices=(\d+)\s*$")
_CALL = re.compile(r"=\s*([A-Za-z_]\w*)\s*\(")
_KNOWN_CALLS = {name for op in OPS for name in re.findall(r"([A-Za-z_]\w*)\(", op.template)}


@dataclass(frozen=True)
class Memory:
    """Addresses per kind: s0..s{scalars-1}, v0.., m0..; s0 is the label, s1 the prediction, v0 the features."""

    scalars: int
    vectors: int
    matrices: int

    def __post_init__(self) -> None:
        if self.scalars < 2 or self.vectors < 2 or self.matrices < 1:
            raise UserError(f"memory needs >= 2 scalars (label s0, prediction s1), >= 2 vectors (features v0 "
                            f"and one to write) and >= 1 matrix, got {self.describe()}")

    def size(self, kind: int) -> int:
        return (self.scalars, self.vectors, self.matrices)[kind - 1]

    def as_array(self) -> np.ndarray:
        return np.array([self.scalars, self.vectors, self.matrices], dtype=np.int64)

    def describe(self) -> str:
        return f"scalars={self.scalars} vectors={self.vectors} matrices={self.matrices}"


@dataclass(frozen=True)
class Instruction:
    op: int
    in1: int = 0
    in2: int = 0
    out: int = 0
    d0: float = 0.0
    d1: float = 0.0
    d2: float = 0.0

    def text(self) -> str:
        spec = OPS[self.op]
        values = {"o": _address(spec.out, self.out), "a": _address(spec.in1, self.in1),
                  "b": _address(spec.in2, self.in2), "d0": repr(float(self.d0)), "d1": repr(float(self.d1)),
                  "d2": repr(float(self.d2))}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], spec.template)

    def addresses(self) -> list[tuple[int, int]]:
        """(kind, address) of every memory slot the instruction touches."""
        spec = OPS[self.op]
        pairs = [(spec.in1, self.in1), (spec.in2, self.in2), (spec.out, self.out)]
        return [(kind, addr) for kind, addr in pairs if kind != NONE]


@dataclass(frozen=True)
class Program:
    setup: tuple[Instruction, ...] = field(default_factory=tuple)
    predict: tuple[Instruction, ...] = field(default_factory=tuple)
    learn: tuple[Instruction, ...] = field(default_factory=tuple)

    @property
    def functions(self) -> tuple[tuple[Instruction, ...], ...]:
        return self.setup, self.predict, self.learn

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.setup), len(self.predict), len(self.learn)

    def to_text(self, memory: Memory | None = None, comment: str = "") -> str:
        lines = [f"# {line}" for line in comment.splitlines()]
        if memory is not None:
            lines.append(f"# memory: {memory.describe()}")
        for name, body in zip(FUNCTIONS, self.functions):
            lines.append(f"def {name}():")
            lines += [f"  {ins.text()}" for ins in body]
        return "\n".join(lines) + "\n"

    def arrays(self, rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(code int32 (rows, 4), data float64 (rows, 3), lens int64 (3,)): the kernels' layout."""
        flat = [ins for body in self.functions for ins in body]
        rows = max(rows or 0, len(flat), 1)
        code = np.zeros((rows, 4), dtype=np.int32)
        data = np.zeros((rows, 3))
        for i, ins in enumerate(flat):
            code[i] = (ins.op, ins.in1, ins.in2, ins.out)
            data[i] = (ins.d0, ins.d1, ins.d2)
        return code, data, np.array(self.sizes, dtype=np.int64)

    @classmethod
    def from_arrays(cls, code: np.ndarray, data: np.ndarray, lens: np.ndarray) -> "Program":
        rows = [Instruction(*(int(x) for x in code[i]), *(float(x) for x in data[i])) for i in range(int(sum(lens)))]
        a, b = int(lens[0]), int(lens[0] + lens[1])
        return cls(tuple(rows[:a]), tuple(rows[a:b]), tuple(rows[b:]))

    def check_memory(self, memory: Memory, source: str = "program") -> None:
        """Every address inside `memory`, every vector/matrix index a fraction in [0, 1) (the reference's
        FloatToIndex: index = int(F * fraction)); the interpreter does not check again."""
        for name, body in zip(FUNCTIONS, self.functions):
            for ins in body:
                for kind, addr in ins.addresses():
                    if addr >= memory.size(kind):
                        raise UserError(f"{source}: {name}: {ins.text()!r} uses {KIND_PREFIX[kind]}{addr}, outside "
                                        f"the memory ({memory.describe()})")
                fractions = {CONST_V: (ins.d0,), CONST_M: (ins.d0, ins.d1)}.get(OPS[ins.op].data, ())
                if not all(0.0 <= f < 1.0 for f in fractions):
                    raise UserError(f"{source}: {name}: {ins.text()!r}: an index is a fraction in [0, 1) of the "
                                    "size (index = int(F * fraction))")


def _address(kind: int, addr: int) -> str:
    return f"{KIND_PREFIX[kind]}{addr}" if kind != NONE else ""


# -- parsing ------------------------------------------------------------------------------------------
def _template_regex(template: str) -> re.Pattern:
    parts = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append(_literal(template[pos:m.start()]))
        name = m.group(1)
        parts.append(f"(?P<{name}>{_ADDRESS if name in 'oab' else _NUMBER})")
        pos = m.end()
    parts.append(_literal(template[pos:]))
    return re.compile("".join(parts))


def _literal(text: str) -> str:
    return r"\s*".join(re.escape(word) for word in text.split(" "))


_PATTERNS: list[tuple[Op, re.Pattern]] = [(op, _template_regex(op.template)) for op in OPS]


def parse_instruction(text: str) -> Instruction:
    """One instruction in the readable form; ValueError with the reason when it is none."""
    line = text.strip()
    kinds_seen = False
    for op, pattern in _PATTERNS:
        m = pattern.fullmatch(line)
        if not m:
            continue
        kinds_seen = True
        groups = m.groupdict()
        addresses = {}
        for slot, kind in (("o", op.out), ("a", op.in1), ("b", op.in2)):
            if slot in groups:
                token = groups[slot]
                if token[0] != KIND_PREFIX[kind]:
                    break
                addresses[slot] = int(token[1:])
        else:
            return Instruction(op.id, addresses.get("a", 0), addresses.get("b", 0), addresses.get("o", 0),
                               *(float(groups.get(d, 0.0)) for d in ("d0", "d1", "d2")))
    call = _CALL.search(line)
    if call and call.group(1) not in _KNOWN_CALLS:
        raise ValueError(f"unknown op {call.group(1)!r}")
    if kinds_seen:
        raise ValueError("no op of the 65 takes these argument kinds")
    raise ValueError("not an instruction of the op set (see docs/zero.md for the forms)")


def parse_program(text: str, source: str = "program") -> tuple[Program, Memory | None]:
    """(program, the memory its `# memory:` line declares, if any). UserError names the line and the reason."""
    bodies: dict[str, list[Instruction]] = {}
    current: str | None = None
    memory = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{source}:{lineno}"
        if line.startswith("#"):
            m = _MEMORY_LINE.match(line)
            if m:
                memory = _memory(m, where)
            continue
        if not line:
            continue
        header = re.fullmatch(r"def\s+(\w+)\s*\(\s*\)\s*:", line)
        if header:
            current = header.group(1)
            if current not in FUNCTIONS:
                raise UserError(f"{where}: unknown function {current!r}: a program has Setup, Predict and Learn")
            if current in bodies:
                raise UserError(f"{where}: function {current} is defined twice")
            bodies[current] = []
            continue
        if current is None:
            raise UserError(f"{where}: {line!r} comes before any 'def Setup():', 'def Predict():' or 'def Learn():'")
        try:
            bodies[current].append(parse_instruction(line))
        except ValueError as err:
            raise UserError(f"{where}: cannot parse {line!r}: {err}") from None
    if not bodies:
        raise UserError(f"{source}: no function found: a program has 'def Setup():', 'def Predict():' and "
                        "'def Learn():' blocks")
    program = Program(*(tuple(bodies.get(name, [])) for name in FUNCTIONS))
    if memory is not None:
        program.check_memory(memory, source)
    return program, memory


def _memory(m: re.Match, where: str) -> Memory:
    try:
        return Memory(*(int(g) for g in m.groups()))
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def load_program(path: str | Path) -> tuple[Program, Memory | None]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"program file {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read program file {str(path)!r}: {err}") from None
    return parse_program(text, str(path))

