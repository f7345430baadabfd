"""The one-shot supernet of the layer-wise spaces (`mobilenetv3`, `ofa-mbv3`): every layer is an MBConv.

Same contract as `model.Supernet` (a sample tensor selects the path, one trace for every child), with the choices
of a MobileNetV3 skeleton (OFA-style weight sharing: one set of weights per layer position, allocated at the
largest option):
- expansion {3, 4, 6}: the expand conv has int(in x 6) channels; a smaller ratio masks to the first int(in x e).
- kernel {3, 5, 7}: one depthwise kernel of the largest size; a smaller kernel is its centre.
- SE (MobileNetV3 style: relu squeeze, hard-sigmoid gate; squeeze width make_divisible(mid / 4), a mask): on/off.
- activation relu / h-swish: both are computed (element-wise, cheap) and the chosen one kept.
- skippable layers (`mobilenetv3`: keep/skip per non-first layer) and elastic depth (`ofa-mbv3`: the first d
  layers of a stage): a layer off the path is the identity; `routing="switch"` skips its computation with
  `tf.cond`, `"mask"` computes it and multiplies it by 0.
Stage widths are fixed in these spaces, so no channel masks between layers. Fixed stages (OFA's first block) are
layers with one option each. BatchNorm uses batch statistics, as in `model.Supernet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mnas.errors import UserError
from mnas.spaces.base import Space
from mnas.spaces.layerwise import KEEP, SKIP, FixedStage, LayerwiseStage
from mnas.spec import make_divisible
from mnas.supernet.model import ROUTINGS, Supernet, _as_list, _bn, _centre_mask, _channel_mask, _masked

ACTIVATIONS = ("relu", "hswish")
SKIP_OPTIONS = (KEEP, SKIP)  # the options of a layer's skip choice, in LayerwiseStage's order


@dataclass(frozen=True)
class LayerPlan:
    """One layer position of a stage: its option tables and where each option sits in the sample (None: fixed)."""

    stage: int
    index: int  # position within the stage
    cin: int
    cout: int
    stride: int
    kernels: tuple[int, ...]
    expands: tuple[float, ...]
    se: tuple[float, ...]  # 1.0 on / 0.0 off per option
    acts: tuple[float, ...]  # 1.0 h-swish / 0.0 relu per option
    position: dict  # option name -> sample index, or None for a fixed value
    kept_by: tuple  # ("always",) | ("depth", sample index, depth options) | ("skip", sample index)

    @property
    def mid_max(self) -> int:
        return int(self.cin * max(self.expands)) if self.has_expand else self.cin

    @property
    def has_expand(self) -> bool:
        return max(self.expands) != 1.0

    def squeeze(self, expand: float) -> int:
        mid = int(self.cin * expand) if self.has_expand else self.cin
        return make_divisible(mid * 0.25)

    @property
    def squeeze_max(self) -> int:
        return max(self.squeeze(e) for e in self.expands)


def is_layerwise(space: Space) -> bool:
    return all(isinstance(stage, (LayerwiseStage, FixedStage)) for stage in space.stages)


def plan_layers(space: Space) -> list[LayerPlan]:
    """One LayerPlan per layer position, or UserError naming what the supernet cannot express."""
    if space.params.get("se_style") != "mobilenetv3":
        raise UserError(f"the supernet cannot express space {space.name!r}: layer-wise spaces need "
                        "MobileNetV3-style SE")
    plans: list[LayerPlan] = []
    width, position = int(space.params.get("stem_filters", 16)), 0
    default_act = str(space.params.get("activation", "relu"))
    for s, stage in enumerate(space.stages):
        if isinstance(stage, FixedStage):
            b = stage.block
            if len(b.kernel_sizes) != 1 or b.block_type != "ir":
                raise UserError(f"the supernet cannot express space {space.name!r}: fixed stage {s} is not a "
                                "single-kernel MBConv")
            plans.append(_fixed_plan(space, s, b, width, default_act))
            width = b.out_filters
            continue
        tags = [c.tag for c in stage.choices]
        fixed = {"expand": 6, "kernel": 3, "se": 0, "act": default_act} | dict(stage.fixed)
        options = dict(stage.layer_options)
        for j in range(stage.n_layers):
            def where(name: str) -> int | None:
                tag = f"s{stage.index}.l{j}/{name}"
                return position + tags.index(tag) if tag in tags else None

            def table(name: str) -> tuple:
                return tuple(options[name]) if name in options else (fixed[name],)

            acts = table("act")
            if any(a not in ACTIVATIONS for a in acts):
                raise UserError(f"the supernet cannot express choice {f's{stage.index}.l{j}/act'!r}: "
                                f"activations {acts} (only {ACTIVATIONS})")
            expands = tuple(float(e) for e in table("expand"))
            if 1.0 in expands and len(expands) > 1:
                raise UserError(f"the supernet cannot express choice {f's{stage.index}.l{j}/expand'!r}: "
                                "expansion 1 beside others")
            if stage.depth_options is not None:
                kept_by = ("always",) if j == 0 else ("depth", position + tags.index(f"s{stage.index}/depth"),
                                                       tuple(stage.depth_options))
            else:
                kept_by = ("always",) if j == 0 else ("skip", where("skip"))
            plans.append(LayerPlan(
                stage=s, index=j, cin=width if j == 0 else stage.out_channels, cout=stage.out_channels,
                stride=stage.stride if j == 0 else 1, kernels=tuple(int(k) for k in table("kernel")),
                expands=expands, se=tuple(1.0 if v else 0.0 for v in table("se")),
                acts=tuple(1.0 if a == "hswish" else 0.0 for a in acts),
                position={name: where(name) for name in ("kernel", "expand", "se", "act")}, kept_by=kept_by))
        width = stage.out_channels
        position += len(stage.choices)
    return plans


def _fixed_plan(space: Space, s: int, block, cin: int, default_act: str) -> LayerPlan:
    act = block.activation or default_act
    if act not in ACTIVATIONS:
        raise UserError(f"the supernet cannot express space {space.name!r}: activation {act!r} in stage {s}")
    return LayerPlan(stage=s, index=0, cin=cin, cout=block.out_filters, stride=block.stride,
                     kernels=(int(block.kernel_sizes[0]),), expands=(float(block.expand_ratio),),
                     se=(1.0 if block.se_ratio else 0.0,), acts=(1.0 if act == "hswish" else 0.0,),
                     position=dict.fromkeys(("kernel", "expand", "se", "act")), kept_by=("always",))


def _hswish(x: tf.Tensor) -> tf.Tensor:
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def _act(x: tf.Tensor, hswish) -> tf.Tensor:
    """h-swish where `hswish` is 1, relu where it is 0 (a 0/1 scalar: the blend is exact). A Python float (a
    fixed activation, e.g. OFA's per-stage ones) computes only that one."""
    if isinstance(hswish, float):
        return _hswish(x) if hswish else tf.nn.relu(x)
    return hswish * _hswish(x) + (1.0 - hswish) * tf.nn.relu(x)


class LayerwiseSupernet(Supernet):
    """Shared weights of every child of a layer-wise space; `model(images, sample)` -> logits of that child."""

    def __init__(self, space: Space, num_classes: int, resolution: int = 32, seed: int = 0,
                 routing: str = "switch") -> None:
        if routing not in ROUTINGS:
            raise UserError(f"supernet routing {routing!r} not in {ROUTINGS}")
        self.routing, self.space = routing, space
        self.layer_plans = plan_layers(space)
        self.plans = []  # block-wise plans: none (Supernet's block code is not used)
        self.num_classes, self.resolution = int(num_classes), int(resolution)
        self.num_choices = len(space.choices)
        self._seed, self._count = int(seed) * 1_000_003, 0
        self._weights: list[tf.Variable] = []
        p = space.params
        self.stem_filters, self.head_filters = int(p["stem_filters"]), int(p["head_filters"])
        self.final_filters = int(p.get("final_filters", 0))
        self.stem_hswish = 1.0 if p.get("stem_activation", p.get("activation")) == "hswish" else 0.0
        self.head_hswish = 1.0 if p.get("head_activation", p.get("activation")) == "hswish" else 0.0
        self.stem_kernel = self._conv_weight("stem_conv", (3, 3, 3, self.stem_filters))
        self.stem_bn = self._bn_weights("stem_bn", self.stem_filters)
        self.layers_weights = [self._layer_weights(plan) for plan in self.layer_plans]
        last = self.layer_plans[-1].cout
        self.head_kernel = self._conv_weight("head_conv", (1, 1, last, self.head_filters))
        self.head_bn = self._bn_weights("head_bn", self.head_filters)
        features = self.head_filters
        if self.final_filters:
            self.final_kernel = self._conv_weight("final_conv", (1, 1, self.head_filters, self.final_filters))
            self.final_bias = self._add("final_bias", (self.final_filters,), "zeros")
            features = self.final_filters
        self.classifier_kernel = self._add("classifier_kernel", (features, self.num_classes), "zeros")
        self.classifier_bias = self._add("classifier_bias", (self.num_classes,), "zeros")

    def _layer_weights(self, plan: LayerPlan) -> dict:
        p, mid = f"s{plan.stage}_{plan.index}", plan.mid_max
        w: dict = {}
        if plan.has_expand:
            w["expand"] = self._conv_weight(f"{p}_expand", (1, 1, plan.cin, mid))
            w["expand_bn"] = self._bn_weights(f"{p}_expand_bn", mid)
        w["dw"] = self._dw_weight(f"{p}_dw", max(plan.kernels), mid)
        w["dw_bn"] = self._bn_weights(f"{p}_dw_bn", mid)
        if max(plan.se):
            sq = plan.squeeze_max
            w["se"] = (self._conv_weight(f"{p}_se_reduce", (1, 1, mid, sq)), self._add(f"{p}_se_reduce_bias", (sq,),
                                                                                         "zeros"),
                       self._conv_weight(f"{p}_se_expand", (1, 1, sq, mid)), self._add(f"{p}_se_expand_bias", (mid,),
                                                                                         "zeros"))
        w["project"] = self._conv_weight(f"{p}_project", (1, 1, mid, plan.cout))
        w["project_bn"] = self._bn_weights(f"{p}_project_bn", plan.cout)
        return w

    # -- the path -------------------------------------------------------------------------------------
    @staticmethod
    def _pick(sample, plan: LayerPlan, name: str, table: tuple, dtype=tf.float32):
        index = plan.position[name]
        if index is None:
            return tf.constant(table[0], dtype)
        return tf.gather(tf.constant(table, dtype), sample[index])

    @staticmethod
    def _kept(sample, plan: LayerPlan):
        if plan.kept_by[0] == "always":
            return tf.constant(True)
        if plan.kept_by[0] == "depth":
            _, index, depths = plan.kept_by
            return tf.gather(tf.constant(depths, tf.int32), sample[index]) > plan.index
        return tf.equal(sample[plan.kept_by[1]], SKIP_OPTIONS.index(KEEP))

    def _forward(self, images, sample):
        sample = tf.cast(tf.reshape(sample, [self.num_choices]), tf.int32)
        x = tf.nn.conv2d(images, self.stem_kernel, 2, "SAME")
        x = _act(_bn(x, *self.stem_bn), self.stem_hswish)
        outputs = []
        for plan, w in zip(self.layer_plans, self.layers_weights):
            x = self._layer(x, plan, w, sample)
            outputs.append(x)
        x = _act(_bn(tf.nn.conv2d(x, self.head_kernel, 1, "SAME"), *self.head_bn), self.head_hswish)
        x = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        if self.final_filters:
            x = _act(tf.nn.conv2d(x, self.final_kernel, 1, "VALID") + self.final_bias, self.head_hswish)
        x = tf.reshape(x, [-1, int(x.shape[-1])])
        return tf.matmul(x, self.classifier_kernel) + self.classifier_bias, outputs

    def _layer(self, x, plan: LayerPlan, w: dict, sample):
        expand = self._pick(sample, plan, "expand", plan.expands)
        hswish = plan.acts[0] if plan.position["act"] is None else self._pick(sample, plan, "act", plan.acts)
        se_on = self._pick(sample, plan, "se", plan.se)
        mid = tf.cast(tf.floor(plan.cin * expand), tf.int32) if plan.has_expand else tf.constant(plan.cin)
        mid_mask = _channel_mask(mid, plan.mid_max)
        kernel_index = sample[plan.position["kernel"]] if plan.position["kernel"] is not None else 0
        centre = tf.gather(tf.constant(np.stack([_centre_mask(max(plan.kernels), k) for k in plan.kernels])
                                       [:, :, :, None, None]), kernel_index)
        dw, dw_bn = w["dw"] * centre, _masked(w["dw_bn"], mid_mask)
        expand_bn = _masked(w["expand_bn"], mid_mask) if plan.has_expand else None
        se = None
        if "se" in w:
            squeeze = self._pick(sample, plan, "expand", tuple(plan.squeeze(e) for e in plan.expands), tf.int32)
            sq_mask = _channel_mask(squeeze, plan.squeeze_max)
            rk, rb, ek, eb = w["se"]
            se = (rk * sq_mask, rb * sq_mask, ek, eb)
        residual = plan.stride == 1 and plan.cin == plan.cout

        def body(x):
            y = x
            if plan.has_expand:
                y = _act(_bn(tf.nn.conv2d(y, w["expand"], 1, "SAME"), *expand_bn), hswish)
            y = tf.nn.depthwise_conv2d(y, dw, [1, plan.stride, plan.stride, 1], "SAME")
            y = _act(_bn(y, *dw_bn), hswish)
            if se is not None:
                s = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
                s = tf.nn.relu(tf.nn.conv2d(s, se[0], 1, "VALID") + se[1])
                gate = tf.nn.relu6(tf.nn.conv2d(s, se[2], 1, "VALID") + se[3] + 3.0) * (1.0 / 6.0)
                y = y * (se_on * gate + (1.0 - se_on))
            y = _bn(tf.nn.conv2d(y, w["project"], 1, "SAME"), *w["project_bn"])
            return y + x if residual else y

        if plan.kept_by[0] == "always":
            return body(x)
        kept = self._kept(sample, plan)  # an optional layer has stride 1 and equal widths
        if self.routing == "switch":
            return tf.cond(kept, lambda: body(x), lambda: x)
        keep = tf.cast(kept, tf.float32)
        return keep * body(x) + (1.0 - keep) * x

    def path_groups(self, sample) -> list[tuple[tf.Tensor, list[tf.Variable]]]:
        """(on_path, variables) for every optional layer and every SE block (see `Supernet.path_groups`)."""
        sample = tf.cast(tf.reshape(sample, [self.num_choices]), tf.int32)
        groups = []
        for plan, w in zip(self.layer_plans, self.layers_weights):
            kept = self._kept(sample, plan)
            se_on = self._pick(sample, plan, "se", plan.se) > 0.5
            body = [v for k, val in w.items() if k != "se" for v in _as_list(val)]
            groups.append((kept, body))
            if "se" in w:
                groups.append((tf.logical_and(kept, se_on), list(w["se"])))
        return groups
