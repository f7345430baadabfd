"""The one-shot supernet: one Keras model that holds every choice of a block-wise space (mnasnet, mixnet).

A child is a *path*: the sample (one option index per choice, `Space.choices` order) enters the forward pass as
an int32 tensor, so one `tf.function` trace serves every child; nothing is rebuilt or retraced per sample.

How each choice of a block is expressed (weights are allocated once, at the widest/largest option):
- filters {0.75, 1, 1.25} x base: every tensor has the block's *maximum* width; a 0/1 channel mask keeps the first
  `filters` channels and zeroes the rest after every BatchNorm. Zero input channels contribute nothing to the next
  conv, so the masked path computes exactly the sliced child network.
- conv op: one `tf.switch_case` per layer over the branches {regular conv, depthwise-separable, MBConv, identity};
  MBConv e3 and e6 share one branch (expand to int(in x 6) channels, e3 masks to the first int(in x 3)), so only
  the chosen branch runs (forward and backward).
- kernel {3, 5} (and MixNet kernel groups): one depthwise/regular kernel of the largest size; a smaller kernel is
  its centre (the rest masked to zero), a kernel group gives each channel split (`split_channels`) its own centre.
- SE on/off: the SE gate is computed and replaced by 1 when off; its squeeze width int(in x 0.25) is a mask.
- skip none / identity / pool: the builder's rules (identity only at stride 1 with equal in/out width, pool =
  avg-pool + 1x1 projection otherwise), decided on the path's runtime widths.
- layers {-1, 0, +1}: layer j of a block runs only if j < the chosen count; otherwise the identity branch.

BatchNorm always uses the current batch's statistics (no moving averages): the statistics of a shared layer
depend on which path feeds it, so each path is normalised by its own batch statistics, in training and in scoring
(the held-out batch is scored in one forward pass). Dropout is left out of the supernet.

Spaces or options it cannot express (other ops, activations) raise UserError naming the choice; layer-wise
spaces have their own supernet (layerwise.py, `make_supernet` picks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnas.errors import UserError  # noqa: E402
from mnas.spaces.base import Space  # noqa: E402
from mnas.spaces.mnasnet import BlockStage  # noqa: E402

BN_EPSILON = 1e-3
BRANCH_CONV, BRANCH_DS, BRANCH_MBCONV, BRANCH_IDENTITY = 0, 1, 2, 3
_OP_BRANCH = {"conv": (BRANCH_CONV, 1.0), "dsconv": (BRANCH_DS, 1.0), "mbconv3": (BRANCH_MBCONV, 3.0),
              "mbconv6": (BRANCH_MBCONV, 6.0)}
_SKIP_CODE = {"none": 0, "id": 1, "pool": 2}
ROUTINGS = ("switch", "mask")


@dataclass(frozen=True)
class StagePlan:
    """What one block of the space needs in the supernet: choice positions, option tables, maximum sizes."""

    index: int
    first_choice: int  # position of the block's `op` choice in the sample
    stride: int
    op_branch: tuple[int, ...]  # per op option
    op_expand: tuple[float, ...]
    kernel_groups: tuple[tuple[int, ...], ...]  # per kernel option: the depthwise kernel of each channel group
    se_on: tuple[float, ...]
    se_ratio: float
    skip_code: tuple[int, ...]
    widths: tuple[int, ...]
    layer_counts: tuple[int, ...]
    in_max: int
    out_max: int

    @property
    def max_layers(self) -> int:
        return max(self.layer_counts)

    @property
    def max_kernel(self) -> int:
        return max(max(g) for g in self.kernel_groups)

    @property
    def max_expand(self) -> float:
        return max(self.op_expand)

    @property
    def max_groups(self) -> int:
        return max(len(g) for g in self.kernel_groups)


def plan_space(space: Space) -> list[StagePlan]:
    """One StagePlan per stage, or UserError naming the first choice the supernet cannot express."""
    plans: list[StagePlan] = []
    position = 0
    in_max = int(space.params.get("stem_filters", 32))
    foreign = [stage for stage in space.stages if not isinstance(stage, BlockStage)]
    if foreign:
        stage = next((st for st in foreign if st.choices), foreign[0])
        tag = stage.choices[0].tag if stage.choices else f"stage {space.stages.index(stage)}"
        raise UserError(f"the supernet cannot express space {space.name!r}: choice {tag!r} belongs to a "
                        f"{type(stage).__name__} (only block-wise mnasnet/mixnet stages are supported)")
    if str(space.params.get("activation", "relu")) != "relu" or space.params.get("se_style", "efficientnet") != \
            "efficientnet":
        raise UserError(f"the supernet cannot express space {space.name!r}: only relu activations and "
                        "efficientnet-style SE are supported")
    for stage in space.stages:
        op_c, kernel_c, se_c, skip_c, filters_c, layers_c = stage.choices
        for op in op_c.options:
            if op not in _OP_BRANCH:
                raise UserError(f"the supernet cannot express choice {op_c.tag!r}: op {op!r}")
        for skip in skip_c.options:
            if skip not in _SKIP_CODE:
                raise UserError(f"the supernet cannot express choice {skip_c.tag!r}: skip {skip!r}")
        ratios = {float(r) for r in se_c.options if r}
        if len(ratios) > 1:
            raise UserError(f"the supernet cannot express choice {se_c.tag!r}: more than one non-zero SE ratio")
        groups = tuple(tuple(int(k) for k in (kk if isinstance(kk, tuple) else (kk,))) for kk in kernel_c.options)
        if any(k % 2 == 0 for g in groups for k in g):
            raise UserError(f"the supernet cannot express choice {kernel_c.tag!r}: even kernel sizes")
        widths = tuple(int(w) for w in filters_c.options)
        plans.append(StagePlan(
            index=len(plans), first_choice=position, stride=int(stage.stride),
            op_branch=tuple(_OP_BRANCH[o][0] for o in op_c.options),
            op_expand=tuple(_OP_BRANCH[o][1] for o in op_c.options), kernel_groups=groups,
            se_on=tuple(1.0 if r else 0.0 for r in se_c.options), se_ratio=max(ratios) if ratios else 0.25,
            skip_code=tuple(_SKIP_CODE[s] for s in skip_c.options), widths=widths,
            layer_counts=tuple(int(n) for n in layers_c.options), in_max=in_max, out_max=max(widths)))
        position += len(stage.choices)
        in_max = max(widths)
    return plans


def _as_list(weights) -> list[tf.Variable]:
    return list(weights) if isinstance(weights, tuple) else [weights]


def _channel_mask(width, channels: int) -> tf.Tensor:
    """[channels] float mask with ones on the first `width` channels."""
    return tf.cast(tf.range(channels) < width, tf.float32)


def _fit_channels(x: tf.Tensor, channels: int) -> tf.Tensor:
    """Pad with zeros or drop (all-zero) trailing channels so x has `channels` channels."""
    have = int(x.shape[-1])
    if have == channels:
        return x
    if have > channels:
        return x[..., :channels]
    return tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, channels - have]])


def _bn(x: tf.Tensor, gamma, beta) -> tf.Tensor:
    """Batch-statistics BatchNorm as one fused op (forward and gradient: far fewer ops to trace than moments).

    Channels the path does not use come in with gamma = beta = 0 (`_masked`), so they come out exactly zero."""
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=BN_EPSILON, is_training=True)
    return y


def _masked(bn: tuple, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(gamma, beta) zeroed outside `mask`: BN then outputs exactly 0 there (BN would otherwise add beta)."""
    return bn[0] * mask, bn[1] * mask


def _se(x: tf.Tensor, weights: tuple, se_on) -> tf.Tensor:
    """EfficientNet-style SE; the gate is replaced by exactly 1 when the path has no SE."""
    reduce_k, reduce_b, expand_k, expand_b = weights
    s = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    s = tf.nn.relu(tf.nn.conv2d(s, reduce_k, 1, "VALID") + reduce_b)
    gate = tf.sigmoid(tf.nn.conv2d(s, expand_k, 1, "VALID") + expand_b)
    return x * (se_on * gate + (1.0 - se_on))


class Supernet:
    """Shared weights (plain tf.Variables) of every child of `space` at one proxy setting (resolution, classes).

    `model(images, sample)` -> logits of the child `sample` (int32 vector, one index per choice);
    `model.stage_outputs(images, sample)` -> the output of every block (for tests and inspection).
    The forward pass is raw TF ops: Keras layer calls and Keras variables cost far more to trace.
    """

    def __init__(self, space: Space, num_classes: int, resolution: int = 32, seed: int = 0,
                 routing: str = "switch") -> None:
        if routing not in ROUTINGS:
            raise UserError(f"supernet routing {routing!r} not in {ROUTINGS}")
        self.routing = routing
        self.space = space
        self.plans = plan_space(space)
        self.num_classes, self.resolution = int(num_classes), int(resolution)
        self.num_choices = len(space.choices)
        self._seed, self._count = int(seed) * 1_000_003, 0
        self._weights: list[tf.Variable] = []
        stem = int(space.params.get("stem_filters", 32))
        head = int(space.params.get("head_filters", 1280))
        self.stem_filters, self.head_filters = stem, head
        self.stem_kernel = self._conv_weight("stem_conv", (3, 3, 3, stem))
        self.stem_bn = self._bn_weights("stem_bn", stem)
        self.blocks_weights = [self._block_weights(plan) for plan in self.plans]
        last = self.plans[-1].out_max
        self.head_kernel = self._conv_weight("head_conv", (1, 1, last, head))
        self.head_bn = self._bn_weights("head_bn", head)
        # zeros: uniform first predictions (see standalone)
        self.classifier_kernel = self._add("classifier_kernel", (head, self.num_classes), "zeros")
        self.classifier_bias = self._add("classifier_bias", (self.num_classes,), "zeros")

    # -- weights ----------------------------------------------------------------------------------------
    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return list(self._weights)

    def count_params(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self._weights))

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self._weights]

    def set_weights(self, values: list[np.ndarray]) -> None:
        if len(values) != len(self._weights):
            raise ValueError(f"supernet has {len(self._weights)} weights, got {len(values)}")
        for var, value in zip(self._weights, values):
            var.assign(value)

    def _add(self, name: str, shape: tuple[int, ...], initializer) -> tf.Variable:
        init = keras.initializers.get(initializer)
        var = tf.Variable(tf.convert_to_tensor(init(shape, dtype="float32")), name=name)
        self._weights.append(var)
        return var

    def _init(self) -> keras.initializers.Initializer:
        self._count += 1
        return keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal", seed=self._seed + self._count)

    def _conv_weight(self, name: str, shape: tuple[int, ...]) -> tf.Variable:
        return self._add(name, shape, self._init())

    def _dw_weight(self, name: str, kernel: int, channels: int) -> tf.Variable:
        # Depthwise: fan_out of a depthwise kernel is k*k (one output per input channel).
        self._count += 1
        init = keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=self._seed + self._count)
        return self._add(name, (kernel, kernel, channels, 1), init)

    def _bn_weights(self, name: str, channels: int) -> tuple[tf.Variable, tf.Variable]:
        return (self._add(f"{name}_gamma", (channels,), "ones"), self._add(f"{name}_beta", (channels,), "zeros"))

    def _block_weights(self, plan: StagePlan) -> list[dict]:
        layers = []
        k = plan.max_kernel
        for j in range(plan.max_layers):
            cin = plan.in_max if j == 0 else plan.out_max
            cout = plan.out_max
            mid = int(cin * plan.max_expand)
            p = f"b{plan.index}_{j}"
            w: dict = {}
            if BRANCH_CONV in plan.op_branch:
                w["conv"] = self._conv_weight(f"{p}_conv", (k, k, cin, cout))
                w["conv_bn"] = self._bn_weights(f"{p}_conv_bn", cout)
                w["conv_se"] = self._se_weights(f"{p}_conv_se", cin, cout, plan.se_ratio)
            if BRANCH_DS in plan.op_branch:
                w["ds_dw"] = self._dw_weight(f"{p}_ds_dw", k, cin)
                w["ds_dw_bn"] = self._bn_weights(f"{p}_ds_dw_bn", cin)
                w["ds_se"] = self._se_weights(f"{p}_ds_se", cin, cin, plan.se_ratio)
                w["ds_project"] = self._conv_weight(f"{p}_ds_project", (1, 1, cin, cout))
                w["ds_project_bn"] = self._bn_weights(f"{p}_ds_project_bn", cout)
            if BRANCH_MBCONV in plan.op_branch:
                w["ir_expand"] = self._conv_weight(f"{p}_ir_expand", (1, 1, cin, mid))
                w["ir_expand_bn"] = self._bn_weights(f"{p}_ir_expand_bn", mid)
                w["ir_dw"] = self._dw_weight(f"{p}_ir_dw", k, mid)
                w["ir_dw_bn"] = self._bn_weights(f"{p}_ir_dw_bn", mid)
                w["ir_se"] = self._se_weights(f"{p}_ir_se", cin, mid, plan.se_ratio)
                w["ir_project"] = self._conv_weight(f"{p}_ir_project", (1, 1, mid, cout))
                w["ir_project_bn"] = self._bn_weights(f"{p}_ir_project_bn", cout)
            if j == 0 and 2 in plan.skip_code:
                w["skip_conv"] = self._conv_weight(f"{p}_skip_conv", (1, 1, cin, cout))
                w["skip_bn"] = self._bn_weights(f"{p}_skip_bn", cout)
            layers.append(w)
        return layers

    def _se_weights(self, name: str, cin_max: int, channels: int, ratio: float) -> tuple:
        squeeze = max(1, int(cin_max * ratio))
        return (self._conv_weight(f"{name}_reduce", (1, 1, channels, squeeze)),
                self._add(f"{name}_reduce_bias", (squeeze,), "zeros"),
                self._conv_weight(f"{name}_expand", (1, 1, squeeze, channels)),
                self._add(f"{name}_expand_bias", (channels,), "zeros"))

    def path_groups(self, sample) -> list[tuple[tf.Tensor, list[tf.Variable]]]:
        """(on_path, variables) for every op branch of every layer, and for its SE weights: a bool tensor that is
        false when the path does not run those weights (another op, a layer beyond the path's depth, SE off).

        For the optimizer's path-only update (PyTorch one-shot NAS behaves so: a branch off the path has no
        gradient and Adam skips it). The stem, head, classifier and skip projections are in no group."""
        sample = tf.cast(tf.reshape(sample, [self.num_choices]), tf.int32)
        groups: list[tuple[tf.Tensor, list[tf.Variable]]] = []
        for plan, layers in zip(self.plans, self.blocks_weights):
            code = tf.gather(tf.constant(plan.op_branch, tf.int32), sample[plan.first_choice])
            se_on = tf.gather(tf.constant(plan.se_on, tf.float32), sample[plan.first_choice + 2]) > 0.5
            n_layers = tf.gather(tf.constant(plan.layer_counts, tf.int32), sample[plan.first_choice + 5])
            for j, w in enumerate(layers):
                for branch, prefix in ((BRANCH_CONV, "conv"), (BRANCH_DS, "ds_"), (BRANCH_MBCONV, "ir_")):
                    keys = [k for k in w if k.startswith(prefix)]
                    if not keys:
                        continue
                    runs = tf.equal(code, branch) if j == 0 else tf.logical_and(j < n_layers, tf.equal(code, branch))
                    se = [k for k in keys if k.endswith("_se")]
                    groups.append((runs, [v for k in keys if k not in se for v in _as_list(w[k])]))
                    groups.append((tf.logical_and(runs, se_on), [v for k in se for v in _as_list(w[k])]))
        return groups

    # -- forward --------------------------------------------------------------------------------------
    def __call__(self, images, sample, training=None) -> tf.Tensor:
        return self._forward(images, sample)[0]

    def stage_outputs(self, images, sample) -> list[tf.Tensor]:
        return self._forward(images, sample)[1]

    def _forward(self, images, sample):
        sample = tf.cast(tf.reshape(sample, [self.num_choices]), tf.int32)
        x = tf.nn.conv2d(images, self.stem_kernel, 2, "SAME")
        x = tf.nn.relu(_bn(x, *self.stem_bn))
        width = tf.constant(self.stem_filters, tf.int32)
        outputs = []
        for plan, weights in zip(self.plans, self.blocks_weights):
            x, width = self._block(x, width, plan, weights, sample)
            outputs.append(x)
        x = tf.nn.conv2d(x, self.head_kernel, 1, "SAME")
        x = tf.nn.relu(_bn(x, *self.head_bn))
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(x, self.classifier_kernel) + self.classifier_bias, outputs

    def _block(self, x, in_width, plan: StagePlan, weights: list[dict], sample):
        def pick(offset: int, table, dtype):
            return tf.gather(tf.constant(table, dtype), sample[plan.first_choice + offset])

        present = sorted(set(plan.op_branch))  # only the ops the space offers get a branch
        branch = pick(0, [present.index(b) for b in plan.op_branch], tf.int32)
        expand = pick(0, plan.op_expand, tf.float32)
        kernel_index = sample[plan.first_choice + 1]
        se_on = pick(2, plan.se_on, tf.float32)
        skip = pick(3, plan.skip_code, tf.int32)
        out_width = pick(4, plan.widths, tf.int32)
        n_layers = pick(5, plan.layer_counts, tf.int32)
        # Masks depend on the sample only: computed once for the first layer and once for all later ones.
        first = _PathMasks(plan, plan.in_max, in_width, out_width, expand, kernel_index, se_on)
        later = _PathMasks(plan, plan.out_max, out_width, out_width, expand, kernel_index, se_on) \
            if plan.max_layers > 1 else None
        identity = len(present)
        for j, w in enumerate(weights):
            ops = _LayerOps(first if j == 0 else later, w, plan.stride if j == 0 else 1)
            fns = [(lambda fn=ops.branch(b): fn(x)) for b in present]
            if j == 0:
                y = self._route(branch, fns) + ops.shortcut(x, skip)
            else:
                # Later layers: stride 1, equal widths, so id and pool skips are both the identity residual.
                residual = tf.cast(skip > 0, tf.float32)
                if self.routing == "switch":  # a skipped layer takes the identity branch: nothing computed
                    index = tf.where(j < n_layers, branch, identity)
                    y = tf.switch_case(index, fns + [lambda: x]) + residual * tf.cast(index != identity,
                                                                                      tf.float32) * x
                else:
                    active = tf.cast(j < n_layers, tf.float32)
                    y = active * (self._route(branch, fns) + residual * x) + (1.0 - active) * x
            x = y
        return x, out_width

    def _route(self, branch, fns):
        """The chosen op branch's output: `switch` runs only that branch (tf.switch_case); `mask` runs every
        branch of the space and keeps the chosen one with a one-hot weight (no control flow)."""
        if len(fns) == 1:
            return fns[0]()
        if self.routing == "switch":
            return tf.switch_case(branch, fns)
        onehot = tf.one_hot(branch, len(fns))
        return tf.add_n([onehot[i] * fn() for i, fn in enumerate(fns)])


class _PathMasks:
    """The masks of one layer position of a block on one path (channel widths, kernel centres, SE squeeze)."""

    def __init__(self, plan: StagePlan, cin: int, in_width, out_width, expand, kernel_index, se_on) -> None:
        self.plan, self.cin, self.in_width, self.out_width = plan, cin, in_width, out_width
        self.kernel_index, self.se_on = kernel_index, se_on
        self.out = _channel_mask(out_width, plan.out_max)
        self.inp = _channel_mask(in_width, cin)
        self.mid_max = int(cin * plan.max_expand)
        mid = tf.cast(tf.floor(tf.cast(in_width, tf.float32) * expand), tf.int32)
        self.mid = _channel_mask(mid, self.mid_max)
        squeeze = tf.maximum(1, tf.cast(tf.floor(tf.cast(in_width, tf.float32) * plan.se_ratio), tf.int32))
        self.squeeze = _channel_mask(squeeze, max(1, int(cin * plan.se_ratio)))
        self.conv_kernel = self._conv_kernel_mask() if BRANCH_CONV in plan.op_branch else None
        self.ds_kernel = self._dw_mask(cin, in_width) if BRANCH_DS in plan.op_branch else None
        self.ir_kernel = self._dw_mask(self.mid_max, mid) if BRANCH_MBCONV in plan.op_branch else None

    def _dw_mask(self, channels: int, width) -> tf.Tensor:
        """[K, K, channels or 1, 1] mask: channel c keeps the centre k_c x k_c of the K x K kernel."""
        plan, big = self.plan, self.plan.max_kernel
        if plan.max_groups == 1:  # one kernel per option: a constant centre mask per option
            table = [_centre_mask(big, g[0]) for g in plan.kernel_groups]
            return tf.gather(tf.constant(np.stack(table)[:, :, :, None, None]), self.kernel_index)
        # MixConv groups: the kernel of each group for the chosen option, padded by repeating the last group
        groups = plan.max_groups
        table = [list(g) + [g[-1]] * (groups - len(g)) for g in plan.kernel_groups]
        kernels = tf.gather(tf.constant(table, tf.int32), self.kernel_index)
        n_groups = tf.gather(tf.constant([len(g) for g in plan.kernel_groups], tf.int32), self.kernel_index)
        base = width // n_groups
        first = width - base * (n_groups - 1)  # split_channels: the first group takes the remainder
        c = tf.range(channels)
        group = tf.where(c < first, 0, 1 + (c - first) // tf.maximum(base, 1))
        group = tf.minimum(group, n_groups - 1)
        k_c = tf.gather(kernels, group)  # [channels]
        offset = tf.abs(tf.range(big) - big // 2)  # distance from the centre
        inside = offset[:, None, None] <= (k_c // 2)[None, None, :]  # [K, 1, C]
        mask = tf.logical_and(inside, tf.transpose(inside, [1, 0, 2]))  # [K, K, C]
        return tf.cast(mask, tf.float32)[..., None]

    def _conv_kernel_mask(self) -> tf.Tensor:
        """[K, K, 1, 1] centre mask of the regular conv: a kernel group means its largest kernel."""
        big = self.plan.max_kernel
        table = [_centre_mask(big, max(g)) for g in self.plan.kernel_groups]
        return tf.gather(tf.constant(np.stack(table)[:, :, :, None, None]), self.kernel_index)


def _centre_mask(big: int, k: int) -> np.ndarray:
    """[big, big] float32 mask of the centre k x k."""
    inside = np.abs(np.arange(big) - big // 2) <= k // 2
    return (inside[:, None] & inside[None, :]).astype(np.float32)


class _LayerOps:
    """One layer of one block on one path: its weights with the path's masks applied (outside the branches, so a
    branch body holds only convolutions, BN and SE), and the branch bodies."""

    def __init__(self, m: _PathMasks, w: dict, stride: int) -> None:
        self.m, self.w, self.stride = m, w, stride

    def branch(self, code: int):
        return {BRANCH_CONV: self.conv, BRANCH_DS: self.ds, BRANCH_MBCONV: self.mbconv}[code]()

    def _se_weights(self, key: str) -> tuple:
        reduce_k, reduce_b, expand_k, expand_b = self.w[key]
        # a zero squeeze channel is relu(0) = 0 and adds nothing to the expand conv
        return reduce_k * self.m.squeeze, reduce_b * self.m.squeeze, expand_k, expand_b

    def conv(self):
        m, w = self.m, self.w
        kernel, bn, se = w["conv"] * m.conv_kernel, _masked(w["conv_bn"], m.out), self._se_weights("conv_se")

        def body(x):
            y = tf.nn.relu(_bn(tf.nn.conv2d(x, kernel, self.stride, "SAME"), *bn))
            return _se(y, se, m.se_on)
        return body

    def ds(self):
        m, w = self.m, self.w
        dw, dw_bn, se = w["ds_dw"] * m.ds_kernel, _masked(w["ds_dw_bn"], m.inp), self._se_weights("ds_se")
        project, project_bn = w["ds_project"], _masked(w["ds_project_bn"], m.out)

        def body(x):
            y = tf.nn.depthwise_conv2d(x, dw, [1, self.stride, self.stride, 1], "SAME")
            y = _se(tf.nn.relu(_bn(y, *dw_bn)), se, m.se_on)
            return _bn(tf.nn.conv2d(y, project, 1, "SAME"), *project_bn)
        return body

    def mbconv(self):
        m, w = self.m, self.w
        expand, expand_bn = w["ir_expand"], _masked(w["ir_expand_bn"], m.mid)
        dw, dw_bn, se = w["ir_dw"] * m.ir_kernel, _masked(w["ir_dw_bn"], m.mid), self._se_weights("ir_se")
        project, project_bn = w["ir_project"], _masked(w["ir_project_bn"], m.out)

        def body(x):
            y = tf.nn.relu(_bn(tf.nn.conv2d(x, expand, 1, "SAME"), *expand_bn))
            y = tf.nn.depthwise_conv2d(y, dw, [1, self.stride, self.stride, 1], "SAME")
            y = _se(tf.nn.relu(_bn(y, *dw_bn)), se, m.se_on)
            return _bn(tf.nn.conv2d(y, project, 1, "SAME"), *project_bn)
        return body

    def shortcut(self, x, skip):
        """The first layer's shortcut by the builder's rules, on the path's runtime widths."""
        m = self.m
        same = tf.equal(m.in_width, m.out_width)
        identity_ok = tf.logical_and(same, self.stride == 1)
        identity = _fit_channels(x, m.plan.out_max)
        if "skip_conv" not in self.w:
            use_id = tf.logical_and(skip > 0, identity_ok)
            return tf.cast(use_id, tf.float32) * identity
        pooled = x
        if self.stride > 1:
            pooled = tf.nn.avg_pool2d(x, self.stride, self.stride, "SAME")
        projected = _bn(tf.nn.conv2d(pooled, self.w["skip_conv"], 1, "SAME"), *_masked(self.w["skip_bn"], m.out))
        pool_shortcut = tf.where(same, _fit_channels(pooled, m.plan.out_max), projected)
        out = tf.zeros_like(projected)
        out = tf.where(tf.logical_and(skip > 0, identity_ok), identity if self.stride == 1 else out, out)
        out = tf.where(tf.logical_and(tf.equal(skip, 2), tf.logical_not(identity_ok)), pool_shortcut, out)
        return out


def make_supernet(space: Space, num_classes: int, resolution: int = 32, seed: int = 0,
                  routing: str = "switch") -> Supernet:
    """The supernet of `space`: block-wise (mnasnet, mixnet) or layer-wise (mobilenetv3, ofa-mbv3)."""
    from mnas.supernet.layerwise import LayerwiseSupernet, is_layerwise

    cls = LayerwiseSupernet if is_layerwise(space) else Supernet
    return cls(space, num_classes, resolution, seed=seed, routing=routing)


def sample_tensor(sample) -> tf.Tensor:
    return tf.constant(np.asarray(sample, dtype=np.int32))
