"""Block strings <-> typed, immutable block args.

The grammar is the one of the authors' TF code (MnasNet, EfficientNet, MixNet), e.g.
`r1_k3_s11_e1_i32_o16_se0.25_noskip`, extended where the search spaces need it:

    [TYPE_]r<repeats>_k<k>[.<k>...]_[a<g>[.<g>...]_][p<g>[.<g>...]_]s<sh><sw>_e<expand>
        [_x<expanded channels>]_i<in>_o<out>[_se<ratio>][_noskip|_poolskip][_keepexpand][_shuffle]
        [_re|_r6|_sw|_hs]

    TYPE   ir (inverted residual / MBConv; the default, never written), ds (depthwise-separable conv:
           depthwise kxk then pointwise 1x1), cn (regular kxk conv). MnasNet's search-space conv ops.
    k      one kernel, or MixNet's mixed depthwise kernels `k3.5.7` (channels split into groups).
    a / p  MixNet's grouped expand / project 1x1 convs: `a1.1` = 2 groups. `a1`/`p1` = 1 group.
    e      expansion ratio of the input width; `x` overrides it with an explicit expanded width
           (MobileNetV3 lists expansion sizes such as 184 that are no integer ratio).
    se     squeeze-excite ratio (base and gate are model-level settings: see `mnas.spec.ModelSpec`).
    skip   identity residual when stride 1 and in == out (default), `noskip`, or `poolskip`
           (MnasNet's pooling skip: avg-pool + 1x1 projection on the shortcut).
    keepexpand  an ir block keeps its expand 1x1 conv at expansion 1 (FBNet's `e1` ops; MBConv drops it).
    shuffle     channel shuffle over the expand conv's groups after its activation (FBNet's `_g2` ops).
    act    re (ReLU), r6 (ReLU6), sw (swish), hs (h-swish); absent = the model's default activation.

`encode(decode(s)) == s` for every canonical string (tokens in the order above, `a`/`p` written as
the authors write them). Pure Python: no TF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mnas.errors import UserError

BLOCK_TYPES = ("ir", "ds", "cn")
SKIPS = ("id", "none", "pool")
ACTIVATIONS = ("relu", "relu6", "swish", "hswish")
_ACT_TOKENS = {"re": "relu", "r6": "relu6", "sw": "swish", "hs": "hswish"}
_TOKEN_OF_ACT = {v: k for k, v in _ACT_TOKENS.items()}
_FLAGS = ("noskip", "poolskip", "keepexpand", "shuffle")


class BlockStringError(UserError):
    """A block string that does not follow the grammar."""


@dataclass(frozen=True)
class BlockArgs:
    """One stage of `repeats` identical layers; only the first takes the stride and in->out change."""

    repeats: int
    kernel_sizes: tuple[int, ...]
    stride: int
    expand_ratio: float
    in_filters: int
    out_filters: int
    block_type: str = "ir"
    expand_groups: int = 1
    project_groups: int = 1
    expand_size: int | None = None
    se_ratio: float | None = None
    skip: str = "id"
    activation: str | None = None
    keep_expand: bool = False  # ir: the expand 1x1 conv stays at expansion 1 (FBNet)
    shuffle: bool = False  # channel shuffle over the expand groups after the expand conv (FBNet's _g2)
    # How the author wrote the group tokens: `a1` vs absent matters for exact round trips.
    written_groups: tuple[bool, bool] = field(default=(False, False), compare=False)

    def __post_init__(self) -> None:
        _check(self.block_type in BLOCK_TYPES, f"block type {self.block_type!r} not in {BLOCK_TYPES}")
        _check(self.repeats >= 1, f"repeats must be >= 1, got {self.repeats}")
        _check(len(self.kernel_sizes) >= 1 and all(k >= 1 and k % 2 for k in self.kernel_sizes),
               f"kernel sizes must be odd and >= 1, got {self.kernel_sizes}")
        _check(self.stride in (1, 2), f"stride must be 1 or 2, got {self.stride}")
        _check(self.expand_ratio > 0, f"expansion must be > 0, got {self.expand_ratio}")
        _check(self.in_filters >= 1 and self.out_filters >= 1, "filters must be >= 1")
        _check(self.expand_groups >= 1 and self.project_groups >= 1, "groups must be >= 1")
        _check(self.se_ratio is None or 0 < self.se_ratio <= 1, f"se ratio must be in (0, 1], got {self.se_ratio}")
        _check(self.skip in SKIPS, f"skip {self.skip!r} not in {SKIPS}")
        _check(self.activation is None or self.activation in ACTIVATIONS,
               f"activation {self.activation!r} not in {ACTIVATIONS}")
        _check(not self.keep_expand or self.block_type == "ir", "keepexpand applies to ir blocks only")
        _check(not self.shuffle or (self.block_type == "ir" and self.expand_groups > 1),
               "shuffle needs an ir block with a grouped expand conv (a<g>.<g>)")

    @property
    def kernel_size(self) -> int:
        """The largest kernel: what a single-kernel consumer (op keys, receptive field) needs."""
        return max(self.kernel_sizes)

    def replace(self, **changes: object) -> "BlockArgs":
        from dataclasses import replace

        return replace(self, **changes)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise BlockStringError(message)


_NUM = r"\d+(?:\.\d+)?"
_DOTTED = r"\d+(?:\.\d+)*"


def decode(block_string: str) -> BlockArgs:
    """Parse one block string; raise BlockStringError naming the problem."""
    if not isinstance(block_string, str) or not block_string.strip():
        raise BlockStringError(f"empty block string {block_string!r}")
    tokens = block_string.strip().split("_")
    block_type = "ir"
    if tokens[0] in BLOCK_TYPES:
        block_type = tokens.pop(0)
    options: dict[str, str] = {}
    flags: list[str] = []
    for token in tokens:
        match = re.fullmatch(r"(se|[rkaspeixo])(.+)", token)
        # `r6` is both ReLU6 and "6 repeats": it is the repeats token until repeats are set (they come first).
        if token in _FLAGS or (token in _ACT_TOKENS and not (token == "r6" and "r" not in options)):
            flags.append(token)
        elif match and match.group(1) not in options:
            options[match.group(1)] = match.group(2)
        else:
            raise BlockStringError(f"malformed block string {block_string!r}: bad or repeated token {token!r}")
    for required in ("r", "k", "s", "e", "i", "o"):
        if required not in options:
            raise BlockStringError(f"malformed block string {block_string!r}: missing '{required}' token")
    skip = "none" if "noskip" in flags else "pool" if "poolskip" in flags else "id"
    acts = [_ACT_TOKENS[f] for f in flags if f in _ACT_TOKENS]
    _check(len(acts) <= 1 and not ("noskip" in flags and "poolskip" in flags),
           f"malformed block string {block_string!r}: conflicting flags")
    try:
        return BlockArgs(
            repeats=_int(options["r"]),
            kernel_sizes=_ints(options["k"]),
            stride=_stride(options["s"]),
            expand_ratio=_num(options["e"]),
            in_filters=_int(options["i"]),
            out_filters=_int(options["o"]),
            block_type=block_type,
            expand_groups=len(_ints(options["a"])) if "a" in options else 1,
            project_groups=len(_ints(options["p"])) if "p" in options else 1,
            expand_size=_int(options["x"]) if "x" in options else None,
            se_ratio=_num(options["se"]) if "se" in options else None,
            skip=skip,
            activation=acts[0] if acts else None,
            keep_expand="keepexpand" in flags,
            shuffle="shuffle" in flags,
            written_groups=("a" in options, "p" in options),
        )
    except (ValueError, BlockStringError) as err:
        raise BlockStringError(f"malformed block string {block_string!r}: {err}") from None


def _int(text: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise BlockStringError(f"expected an integer, got {text!r}")
    return int(text)


def _num(text: str) -> float:
    if not re.fullmatch(_NUM, text):
        raise BlockStringError(f"expected a number, got {text!r}")
    return float(text)


def _ints(text: str) -> tuple[int, ...]:
    if not re.fullmatch(_DOTTED, text):
        raise BlockStringError(f"expected integers joined by '.', got {text!r}")
    return tuple(int(t) for t in text.split("."))


def _stride(text: str) -> int:
    # The authors write a (height, width) pair: `s22`. A lone digit is accepted too.
    if not re.fullmatch(r"\d\d?", text) or len(set(text)) != 1:
        raise BlockStringError(f"stride must be '11' or '22', got {text!r}")
    return int(text[0])


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def encode(args: BlockArgs) -> str:
    """The canonical block string of `args`."""
    parts = [] if args.block_type == "ir" else [args.block_type]
    parts += [f"r{args.repeats}", "k" + ".".join(str(k) for k in args.kernel_sizes)]
    wrote_a, wrote_p = args.written_groups
    if wrote_a or args.expand_groups > 1:
        parts.append("a" + ".".join(["1"] * args.expand_groups))
    if wrote_p or args.project_groups > 1:
        parts.append("p" + ".".join(["1"] * args.project_groups))
    parts += [f"s{args.stride}{args.stride}", f"e{_fmt(args.expand_ratio)}"]
    if args.expand_size is not None:
        parts.append(f"x{args.expand_size}")
    parts += [f"i{args.in_filters}", f"o{args.out_filters}"]
    if args.se_ratio is not None:
        parts.append(f"se{_fmt(args.se_ratio)}")
    if args.skip != "id":
        parts.append("noskip" if args.skip == "none" else "poolskip")
    parts += [flag for flag, on in (("keepexpand", args.keep_expand), ("shuffle", args.shuffle)) if on]
    if args.activation is not None:
        parts.append(_TOKEN_OF_ACT[args.activation])
    return "_".join(parts)


def decode_all(block_strings: list[str] | tuple[str, ...]) -> tuple[BlockArgs, ...]:
    return tuple(decode(s) for s in block_strings)


def encode_all(blocks: tuple[BlockArgs, ...] | list[BlockArgs]) -> list[str]:
    return [encode(b) for b in blocks]
