"""`supernet`: the weight-sharing accuracy evaluator (ENAS / TuNAS style), behind the `standalone` protocol.

`evaluate(specs)`: on the first call, W warm-up steps on uniformly sampled paths (W = 0 by default: on the full
mnasnet space a few hundred uniform steps train nothing and the search found worse children after them; see
docs/supernet.md); then for each spec, K shared-weight training steps on its path (train split, batches drawn
with the evaluator's own seeded rng) and its accuracy on a fixed held-out batch of the validation split. The
accuracy is the one-shot estimate of ACC(m) for the reward.

Where a child starts (`child_start`): "shared" (default) trains each child's K steps on the weights the earlier
children left, so the shared weights learn over the search, and paths the controller samples often score higher
as the search goes on (drift). "fixed" puts the weights back after every child: each child trains K steps from
the same weights (the warm-up's) with a fresh Adam on the same K batches, so its score is a function of the child
alone and scores stay comparable over a whole search (docs/supernet.md compares the two).

Specs -> paths: a spec made by `Space.to_spec` carries its sample in `spec.extra["sample"]`; a spec without it
(e.g. rebuilt from a run store) is mapped back by matching its blocks stage by stage (`sample_of`).

BatchNorm: the supernet always normalises with the current batch's statistics (model.py), so the held-out batch
is scored in one forward pass with its own statistics *for this path*; moving averages shared by all paths would
mix the statistics of different widths/ops and score every path with the wrong ones.

Resume: with a `state_dir` (the search passes its run directory's `supernet/`), the shared weights, the optimizer
slots, the step and call counters and the rng state are written to `state_dir/supernet.npz` (atomically) every
`checkpoint_every` calls, and loaded on construction, so a resumed search continues from the last checkpoint
(at most `checkpoint_every - 1` calls of shared-weight training are redone). A checkpoint of another space or
proxy setting is refused with one line.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from mnas.data import ProxyData
from mnas.errors import UserError
from mnas.evaluators.base import EvalResult
from mnas.spaces.base import Sample, Space
from mnas.spec import ModelSpec
from mnas.tfgraphs import grappler_off

CHECKPOINT_NAME = "supernet.npz"
CHECKPOINT_FORMAT = 2
# Adam on every shared weight every step (off-path weights get a zero gradient and still move by their momentum), or
# on the path's weights only (a branch, layer or SE the path does not run keeps its weights and moments, as in
# PyTorch one-shot code where such weights have no gradient). "path" steps 9% faster but traces 2-3 s longer, and
# its searches were not better (docs/supernet.md), so "all" stays the default.
UPDATES = ("all", "path")
# Where each child's K path steps start (module docstring). In five seeds "fixed" did not reach the stand-alone
# level faster than "shared" (docs/supernet.md), so "shared" stays the default.
CHILD_STARTS = ("shared", "fixed")


def resolve_space(space: Space | str | None) -> Space:
    from mnas import spaces

    if space is None:
        raise UserError("the supernet evaluator needs the search space (--space)")
    return space if isinstance(space, Space) else spaces.get(str(space))


def sample_of(space: Space, spec: ModelSpec) -> Sample:
    """The sample of `space` whose spec is `spec` (its `extra["sample"]`, else by matching blocks), or UserError."""
    extra = getattr(spec, "extra", None) or {}
    if extra.get("sample") is not None and extra.get("space", space.name) == space.name:
        return space.decode_sample(str(extra["sample"]))
    if extra.get("space") not in (None, space.name):
        raise UserError(f"spec {spec.name!r} comes from space {extra['space']!r}, the supernet holds {space.name!r}")
    blocks = list(spec.blocks)
    stage_values = _match_stages(space, 0, blocks, int(space.params.get("stem_filters", 32)))
    if isinstance(stage_values, str):
        raise UserError(f"spec {spec.name!r} is not an architecture of space {space.name!r} ({stage_values})")
    return space._sample_of(stage_values)


def _match_stages(space: Space, i: int, blocks: list, width: int) -> list[tuple] | str:
    """Values of stages i.. that make exactly `blocks` (backtracking over how many blocks each stage takes), or
    why not."""
    if i == len(space.stages):
        return [] if not blocks else f"{len(blocks)} more blocks than the space makes"
    stage = space.stages[i]
    why = f"no option of {stage.choices[0].tag.split('/')[0] if stage.choices else f'stage {i}'} matches its blocks"
    for values, taken in _stage_candidates(stage, blocks, width):
        rest = _match_stages(space, i + 1, blocks[taken:], stage.out_filters(values))
        if not isinstance(rest, str):
            return [values] + rest
        why = rest
    return why


def _stage_candidates(stage, blocks: list, width: int):
    """(values, blocks taken) for every way `stage` makes a prefix of `blocks`. Layer-wise stages are matched
    layer by layer (their full product is millions of values); which optional positions a child keeps is not
    recorded in its blocks, so the first ones are taken."""
    from mnas.spaces.layerwise import KEEP, SKIP, LayerwiseStage

    if not isinstance(stage, LayerwiseStage):
        for values in itertools.product(*(c.options for c in stage.choices)):
            made = stage.blocks(values, width)
            if blocks[:len(made)] == made:
                yield values, len(made)
        return
    configs = stage._configs()
    names = [name for name, _ in stage.layer_options]
    default = configs[0]
    firsts = [c for c in configs if blocks and stage._block(c, width, True) == blocks[0]]
    for first in firsts:
        for kept in sorted(stage.kept_counts, reverse=True):
            chosen = [first]
            for block in blocks[1:1 + kept]:
                match = next((c for c in configs if stage._block(c, stage.out_channels, False) == block), None)
                if match is None:
                    break
                chosen.append(match)
            if len(chosen) != kept + 1:
                continue
            values: list = [kept + 1] if stage.depth_options is not None else []
            for j in range(stage.n_layers):
                if stage.depth_options is None and j > 0:
                    values.append(KEEP if j <= kept else SKIP)
                config = chosen[j] if j <= kept else default
                values += [config[name] for name in names]
            yield tuple(values), kept + 1


class SupernetEvaluator:
    name = "supernet"

    def __init__(self, data: ProxyData, space: Space | str | None = None, steps_per_child: int = 5,
                 warmup_steps: int = 0, batch_size: int = 64, val_batch: int = 500, proxy_resolution: int = 32,
                 learning_rate: float = 1e-3, seed: int = 0, state_dir: str | Path | None = None,
                 checkpoint_every: int = 10, routing: str | None = None, grappler: bool = False,
                 update: str = "all", child_start: str = "shared",
                 cache: object | None = None) -> None:
        if steps_per_child < 0 or warmup_steps < 0:
            raise UserError("supernet steps per child and warm-up steps must be >= 0")
        if batch_size < 2 or val_batch < 2:
            raise UserError(f"supernet batch sizes must be >= 2, got {batch_size} / {val_batch}")
        if data.resolution != proxy_resolution:
            raise UserError(f"proxy data is {data.resolution}px but --proxy-resolution is {proxy_resolution}")
        if update not in UPDATES:
            raise UserError(f"supernet update {update!r} not in {UPDATES}")
        if child_start not in CHILD_STARTS:
            raise UserError(f"supernet child_start {child_start!r} not in {CHILD_STARTS}")
        self.space = resolve_space(space)
        self.data = data
        self.steps_per_child, self.warmup_steps = int(steps_per_child), int(warmup_steps)
        self.batch_size, self.val_batch = int(batch_size), int(min(val_batch, len(data.y_val)))
        self.proxy_resolution, self.learning_rate, self.seed = proxy_resolution, float(learning_rate), int(seed)
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.routing, self.grappler, self.update = routing, bool(grappler), update
        self.child_start = child_start
        self.state_dir = Path(state_dir) if state_dir is not None else _state_dir_of(cache)
        self._data_fingerprint = data.fingerprint()
        self.rng = np.random.default_rng(self.seed)
        self.steps = 0  # shared-weight training steps so far (warm-up included)
        self.calls = 0  # evaluate() calls so far
        self.warmed_up = False
        self.traces = 0  # tf.function traces of the train / score steps (tests: must stay 2)
        self._start: list | None = None  # child_start="fixed": the weights every child starts from
        val_order = np.random.default_rng(self.seed + 1).permutation(len(data.y_val))[:self.val_batch]
        self._x_val, self._y_val = data.x_val[val_order], data.y_val[val_order]
        self._build()
        self.restore()

    # -- protocol ----------------------------------------------------------------------------------------
    def settings(self) -> dict:
        # format 2: plain tf.Variables + one-op Adam (a format-1 checkpoint holds Keras optimizer slots)
        return {"evaluator": self.name, "format": CHECKPOINT_FORMAT, "space": self.space.name,
                "steps_per_child": self.steps_per_child,
                "warmup_steps": self.warmup_steps, "batch_size": self.batch_size, "val_batch": self.val_batch,
                "proxy_resolution": self.proxy_resolution, "lr": self.learning_rate, "seed": self.seed,
                "data": self._data_fingerprint, "train": len(self.data.y_train), "val": len(self.data.y_val)} | \
            ({} if self.update == "all" else {"update": self.update}) | \
            ({} if self.child_start == "shared" else {"child_start": self.child_start})  # older checkpoints load

    def evaluate(self, specs: Sequence[ModelSpec]) -> list[EvalResult]:
        samples = [sample_of(self.space, spec) for spec in specs]  # refuse bad specs before training anything
        warmup_s = self.warmup() if not self.warmed_up else 0.0
        out = []
        for sample in samples:
            t0 = time.perf_counter()
            accuracy, loss, train_s = self.one_shot(sample)
            t2 = time.perf_counter()
            detail = {"train_s": train_s, "eval_s": t2 - t0 - train_s, "warmup_s": warmup_s, "train_loss": loss,
                      "supernet_steps": self.steps, "one_shot": True}
            out.append(EvalResult(accuracy, t2 - t0 + warmup_s, False, detail))
            warmup_s = 0.0
        self.calls += 1
        if self.calls % self.checkpoint_every == 0:
            self.save()
        return out

    # -- training and scoring ----------------------------------------------------------------------------
    def one_shot(self, sample: Sequence[int], steps: int | None = None) -> tuple[float, float, float]:
        """The search's reward signal for one child: `steps` (default K) steps on its path, then its accuracy on
        the held-out batch. Returns (accuracy, last training loss, seconds spent training).

        child_start="fixed": every child trains from the same weights (the warm-up's) on the same K batches
        (common random numbers: children differ by architecture, not by batch luck), and the weights and Adam
        are put back afterwards, so a child's score does not depend on the children scored before it."""
        if not self.warmed_up:
            self.warmup()
        fixed = self.child_start == "fixed"
        t0 = time.perf_counter()
        steps = self.steps_per_child if steps is None else steps
        loss = self.train_path(sample, steps, rng=np.random.default_rng(self.seed + 2) if fixed else None)
        train_s = time.perf_counter() - t0
        accuracy = self.score(sample)
        if fixed:
            self._reset()
        return accuracy, loss, train_s

    def warmup(self) -> float:
        """W steps on uniformly sampled paths (one new path per step). Returns seconds spent."""
        t0 = time.perf_counter()
        for _ in range(self.warmup_steps):
            self.train_path(self.space.sample_random(self.rng), 1)
        self.warmed_up = True
        self._keep_start()
        return time.perf_counter() - t0

    def _keep_start(self) -> None:
        """child_start="fixed": remember the current weights as every child's starting point."""
        if self.child_start != "fixed":
            return
        import tensorflow as tf

        weights = self.model.trainable_variables
        if self._start is None:
            self._start = [tf.Variable(w, trainable=False) for w in weights]
        else:
            for keep, w in zip(self._start, weights):
                keep.assign(w)

        @tf.function(autograph=False)
        def reset():
            # every child trains from the same weights with a fresh Adam: one-shot scores stay comparable
            # over a search (no drift towards the paths the controller has trained most)
            for w, keep in zip(weights, self._start):
                w.assign(keep)
            for slot in self.optimizer.variables:
                slot.assign(tf.zeros_like(slot))

        self._reset = reset
        reset()  # the first child too starts with a fresh Adam (the warm-up's moments are not its own)

    def train_path(self, sample: Sequence[int], steps: int, rng: np.random.Generator | None = None) -> float:
        """`steps` shared-weight SGD steps on the path `sample` (batches drawn with `rng`, default the
        evaluator's); returns the last batch's loss (nan if none)."""
        import tensorflow as tf

        rng = self.rng if rng is None else rng
        path = tf.constant(np.asarray(self.space.validate(sample), np.int32))
        loss = float("nan")
        n = len(self.data.y_train)
        for _ in range(steps):
            idx = rng.choice(n, size=min(self.batch_size, n), replace=False)
            with self._graph_options():
                loss = float(self._train_step(tf.constant(self.data.x_train[idx]),
                                              tf.constant(self.data.y_train[idx]), path))
            self.steps += 1
        return loss

    def score(self, sample: Sequence[int], x: np.ndarray | None = None, y: np.ndarray | None = None) -> float:
        """Accuracy of the path on the fixed held-out batch, or on (`x`, `y`) when given (e.g. a fresh batch to
        re-score candidate picks); one forward pass with this path's BN statistics."""
        import tensorflow as tf

        if (x is None) != (y is None):
            raise ValueError("score needs both x and y, or neither")
        x, y = (self._x_val, self._y_val) if x is None else (x, y)
        path = tf.constant(np.asarray(self.space.validate(sample), np.int32))
        with self._graph_options():
            logits = self._logits(tf.constant(x), path).numpy()
        return float(np.mean(np.argmax(logits, axis=-1) == y))

    def snapshot(self) -> dict:
        """In-memory copy of everything training changes (weights, Adam slots, counters, rng): `rollback` to it
        after trying paths out (re-scoring picks) so the search continues as if they had not been trained."""
        return {"weights": [np.array(w) for w in self.model.get_weights()],
                "slots": [v.numpy().copy() for v in self.optimizer.variables],
                "steps": self.steps, "rng": self.rng.bit_generator.state}

    def rollback(self, snapshot: dict) -> None:
        self.model.set_weights(snapshot["weights"])
        for var, value in zip(self.optimizer.variables, snapshot["slots"]):
            var.assign(value)
        self.steps, self.rng.bit_generator.state = snapshot["steps"], snapshot["rng"]

    def _graph_options(self):
        """Grappler off for the supernet's steps (`mnas.tfgraphs.grappler_off`) unless `grappler=True`."""
        return grappler_off(enabled=not self.grappler)

    def trace(self) -> None:
        """Trace both steps now (the Python side of the one-time cost; the first call still optimises the graph)."""
        self._train_step.get_concrete_function()
        self._logits.get_concrete_function()

    def _build(self) -> None:
        import keras
        import tensorflow as tf

        from mnas.supernet.model import make_supernet

        keras.utils.set_random_seed(self.seed)
        extra = {} if self.routing is None else {"routing": self.routing}
        self.model = make_supernet(self.space, self.data.num_classes, self.proxy_resolution, seed=self.seed, **extra)
        self.optimizer = Adam(self.model.trainable_variables, self.learning_rate)
        model, optimizer = self.model, self.optimizer
        r, n = self.proxy_resolution, len(self.space.choices)
        image = tf.TensorSpec([None, r, r, 3], tf.float32)
        path = tf.TensorSpec([n], tf.int32)
        index = {v.ref(): i for i, v in enumerate(model.trainable_variables)}

        # autograph off: the steps have no Python control flow to convert, only its tracing cost
        @tf.function(input_signature=[image, tf.TensorSpec([None], tf.int64), path], autograph=False)
        def train_step(x, y, sample):
            self.traces += 1  # Python side effect: runs only when TF traces
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                logits = model(x, sample)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, variables)
            groups = [] if self.update == "all" else \
                [(on, [index[v.ref()] for v in group]) for on, group in model.path_groups(sample)]
            optimizer.apply([tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)], groups)
            return loss

        @tf.function(input_signature=[image, path], autograph=False)
        def logits_of(x, sample):
            self.traces += 1
            return model(x, sample)

        self._train_step, self._logits = train_step, logits_of

    # -- checkpoint ------------------------------------------------------------------------------------
    def _checkpoint_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / CHECKPOINT_NAME

    def save(self) -> Path | None:
        """Write weights, optimizer slots, counters and rng to `state_dir` (atomic rename). None without one."""
        path = self._checkpoint_path()
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": np.asarray(v) for i, v in enumerate(self.model.get_weights())}
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(self.optimizer.variables)})
        meta = {"settings": _comparable(self.settings()), "steps": self.steps, "calls": self.calls,
                "warmed_up": self.warmed_up, "rng": self.rng.bit_generator.state}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def restore(self) -> bool:
        """Load the checkpoint in `state_dir` if there is one; refuse one written with other settings."""
        path = self._checkpoint_path()
        if path is None or not path.exists():
            return False
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            mine = _comparable(self.settings())
            if meta["settings"] != mine:
                differ = sorted(k for k in set(mine) | set(meta["settings"])
                                if mine.get(k) != meta["settings"].get(k))
                theirs = meta["settings"]
                what = ", ".join(f"{k}: {theirs.get(k)!r} != {mine.get(k)!r}" for k in differ)
                raise UserError(f"supernet checkpoint {str(path)!r} was written with other settings ({what})")
            weights = [arrays[f"w{i}"] for i in range(len(self.model.get_weights()))]
            slots = [arrays[f"o{i}"] for i in range(len(self.optimizer.variables))]
        self.model.set_weights(weights)
        for var, value in zip(self.optimizer.variables, slots):
            var.assign(value)
        self.steps, self.calls, self.warmed_up = int(meta["steps"]), int(meta["calls"]), bool(meta["warmed_up"])
        self.rng.bit_generator.state = meta["rng"]
        if self.warmed_up:
            self._keep_start()  # saved between calls, so after the last child's reset: the start weights
        return True


class Adam:
    """Adam (Keras' defaults: beta 0.9 / 0.999, epsilon 1e-7) as one `ResourceApplyAdam` op per variable.

    Keras 3's optimizer traces about fifteen Python-level ops per variable; over the supernet's ~750 variables
    that was a third of the train step's trace time. The update rule is the same (bias-corrected step size).
    """

    def __init__(self, variables, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        import tensorflow as tf

        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self._vars = list(variables)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self._m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in self._vars]
        self._v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in self._vars]

    @property
    def variables(self) -> list:
        """Checkpointed state: the step counter, then every first and second moment."""
        return [self.iterations, *self._m, *self._v]

    def apply(self, grads, groups: Sequence[tuple[object, Sequence[int]]] = ()) -> None:
        """One step on every variable; a variable in `groups` (a bool tensor, variable indices) is updated only
        when its group's tensor is true: weights and moments of the rest stay as they are (lazy Adam)."""
        import tensorflow as tf

        t = tf.cast(self.iterations + 1, tf.float32)
        b1_power, b2_power = tf.pow(self.beta_1, t), tf.pow(self.beta_2, t)

        def update(indices) -> tf.Tensor:
            for i in indices:
                tf.raw_ops.ResourceApplyAdam(var=self._vars[i].handle, m=self._m[i].handle, v=self._v[i].handle,
                                             beta1_power=b1_power, beta2_power=b2_power, lr=self.learning_rate,
                                             beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
                                             grad=grads[i])
            return tf.constant(True)

        grouped = {i for _, indices in groups for i in indices}
        update([i for i in range(len(self._vars)) if i not in grouped])
        for on, indices in groups:
            if indices:
                tf.cond(on, lambda indices=indices: update(indices), lambda: tf.constant(False))
        self.iterations.assign_add(1)


def _state_dir_of(cache: object) -> Path | None:
    """`<run dir>/supernet` when `cache` is a run store's cache (what `mnas search` passes), else None.

    Lets `--resume` restore the shared weights without the loop knowing about them; an explicit `state_dir`
    argument wins."""
    store_path = getattr(getattr(cache, "_store", None), "path", None)
    return Path(store_path).parent / "supernet" if store_path is not None else None


def _comparable(settings: dict) -> dict:
    return json.loads(json.dumps(settings, sort_keys=True))
