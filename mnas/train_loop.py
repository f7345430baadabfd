"""The training loop of `mnas train` (Keras 3, TF backend): model with drop-connect, optimizer with warm-up and
decay, EMA of the weights, per-epoch checkpoint and exact resume.

Why a hand-written loop of `tf.function` steps and not `model.fit`: the step also updates the EMA shadow
weights, and the whole state (model variables including dropout seed states, optimizer slots and iteration
count, EMA, epoch) is saved after every epoch in one file written atomically, so a run killed at any point
(kill -9 included) continues from the last finished epoch and ends where an uninterrupted run ends. Batch order
and augmentation are seeded by (seed, epoch, batch) (`mnas.train_data`), dropout and drop-connect draw from
Keras seed generators whose states are in the checkpoint.

Evaluation uses a second copy of the network (`eval_model`) that gets the EMA weights; its BatchNorm statistics
are then re-estimated on a few training batches (`bn_recal_batches`): short trainings leave Keras' moving
averages (momentum 0.99) far from the statistics of the final weights (see mnas.evaluators.standalone).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnas.errors import UserError  # noqa: E402
from mnas.spec import ModelSpec  # noqa: E402
from mnas.train_data import augment_batch, iterate  # noqa: E402

CHECKPOINT = "checkpoint.npz"
EVAL_BATCH = 256


@dataclass(frozen=True)
class Recipe:
    """The resolved recipe: every default filled in (what the model card reports)."""

    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_steps: int
    total_steps: int
    decay_rate: float
    decay_steps: int
    label_smoothing: float
    dropout: float
    drop_connect: float
    augment_pad: int
    flip: bool
    ema_decay: float
    bn_recal_batches: int
    batch_size: int
    steps_per_epoch: int
    epochs: int
    seed: int


@dataclass
class Trained:
    eval_model: object
    history: list[dict]
    accuracy: float
    resumed_from: list[int] = field(default_factory=list)
    seconds: float = 0.0


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then cosine to 0, or staircase exponential decay (MnasNet: 0.97 every 2.4
    epochs), or constant."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, kind: str = "cosine",
                 decay_rate: float = 0.97, decay_steps: int = 1) -> None:
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)
        self.kind, self.decay_rate, self.decay_steps = kind, float(decay_rate), max(1, int(decay_steps))

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        after = ops.maximum(step - self.warmup_steps, 0.0)
        if self.kind == "cosine":
            progress = ops.minimum(after / max(self.total_steps - self.warmup_steps, 1), 1.0)
            decayed = 0.5 * self.peak * (1.0 + ops.cos(np.pi * progress))
        elif self.kind == "exponential":
            decayed = self.peak * ops.power(self.decay_rate, ops.floor(after / self.decay_steps))
        else:
            decayed = ops.convert_to_tensor(self.peak)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "kind": self.kind, "decay_rate": self.decay_rate, "decay_steps": self.decay_steps}


class DropConnectAdd(keras.layers.Layer):
    """A residual add that drops the block's branch per sample in training (stochastic depth, EfficientNet's
    "drop connect"), scaling the survivors by 1 / keep; a plain ADD at inference."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        branch, shortcut = inputs
        if training and self.rate > 0:
            keep = 1.0 - self.rate
            shape = (keras.ops.shape(branch)[0], 1, 1, 1)
            mask = keras.ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator))
            branch = branch / keep * mask
        return branch + shortcut


def build_models(spec: ModelSpec, recipe: Recipe) -> tuple[keras.Model, keras.Model]:
    """(training model, eval model): the builder's network, the training copy with drop-connect adds."""
    from mnas.builder import build_keras
    from mnas.evaluators.standalone import _zero_classifier

    keras.utils.set_random_seed(recipe.seed)
    model = build_keras(spec, seed=recipe.seed)
    _zero_classifier(model)
    if recipe.drop_connect > 0:
        model = _with_drop_connect(model, recipe.drop_connect, recipe.seed)
    return model, build_keras(spec, seed=recipe.seed)


def _with_drop_connect(model: keras.Model, rate: float, seed: int) -> keras.Model:
    # The builder names every residual add `b{block}_{repeat}_add`, branch first (mnas.builder._block).
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add) and layer.name.endswith("_add")]
    rates = {name: rate * i / max(len(adds), 1) for i, name in enumerate(adds)}  # EfficientNet: grows with depth

    def clone(layer):
        if layer.name in rates:
            return DropConnectAdd(rates[layer.name], seed=seed * 1009 + adds.index(layer.name), name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone_model = keras.models.clone_model(model, clone_function=clone)
    clone_model.set_weights(model.get_weights())
    return clone_model


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    schedule = WarmupDecay(recipe.lr, recipe.warmup_steps, recipe.total_steps, recipe.schedule, recipe.decay_rate,
                           recipe.decay_steps)
    if recipe.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)
    elif recipe.optimizer == "rmsprop":  # MnasNet / EfficientNet: decay 0.9, momentum 0.9, epsilon 1e-3
        opt = keras.optimizers.RMSprop(learning_rate=schedule, rho=0.9, momentum=0.9, epsilon=1e-3,
                                       weight_decay=recipe.weight_decay)
    else:
        opt = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, nesterov=True,
                                   weight_decay=recipe.weight_decay)
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])  # BN and biases are not decayed
    return opt


# -- checkpoint ------------------------------------------------------------------------------------
def read_checkpoint_state(out: Path) -> dict | None:
    path = Path(out) / CHECKPOINT
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return json.loads(str(arrays["state"]))
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot read checkpoint {str(path)!r}: {err}; delete it to start over") from None


def save_checkpoint(out: Path, groups: dict[str, list], state: dict) -> None:
    """Every variable of every group plus the JSON state, written to a temp file and renamed (a kill leaves
    the previous checkpoint whole)."""
    arrays = {f"{g}{i:05d}": np.asarray(v.numpy()) for g, variables in groups.items()
              for i, v in enumerate(variables)}
    arrays["state"] = np.array(json.dumps(state))
    path = Path(out) / CHECKPOINT
    tmp = path.with_name(CHECKPOINT + ".part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def restore_checkpoint(out: Path, groups: dict[str, list]) -> None:
    path = Path(out) / CHECKPOINT
    with np.load(path, allow_pickle=False) as arrays:
        for g, variables in groups.items():
            stored = sorted(k for k in arrays.files if k.startswith(g) and k[len(g):].isdigit())
            if len(stored) != len(variables):
                raise UserError(f"checkpoint {str(path)!r} holds {len(stored)} '{g}' variables, this model has "
                                f"{len(variables)}; it was written for another network: use another --out")
            for key, var in zip(stored, variables):
                value = arrays[key]
                if tuple(value.shape) != tuple(var.shape):
                    raise UserError(f"checkpoint {str(path)!r}: variable {key} has shape {value.shape}, the model "
                                    f"{tuple(var.shape)}; use another --out")
                var.assign(value)


# -- the loop --------------------------------------------------------------------------------------
class Loop:
    """One training run: models, optimizer, EMA, traced functions."""

    def __init__(self, spec: ModelSpec, data, recipe: Recipe) -> None:
        keras.backend.clear_session()
        self.spec, self.data, self.recipe = spec, data, recipe
        self.model, self.eval_model = build_models(spec, recipe)
        self.optimizer = make_optimizer(recipe)
        self.optimizer.build(self.model.trainable_variables)
        self.weights = list(self.model.weights)
        if [w.path for w in self.eval_model.weights] != [w.path for w in self.weights]:
            raise RuntimeError("the eval model's weights do not line up with the training model's")
        # One flat shadow vector: one update op per step instead of one per weight (the trace stays short).
        flat = np.concatenate([w.numpy().reshape(-1) for w in self.weights])
        self.ema = [tf.Variable(flat, trainable=False)] if recipe.ema_decay > 0 else []
        self._step = self._train_step()
        self._infer = tf.function(lambda x: self.eval_model(x, training=False), autograph=False)
        self._bns = [layer for layer in self.eval_model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        self._bn_forward = tf.function(lambda x: self.eval_model(x, training=True), autograph=False)

    def groups(self) -> dict[str, list]:
        return {"model": self.model.variables, "opt": self.optimizer.variables, "ema": self.ema}

    def _train_step(self):
        model, optimizer, recipe = self.model, self.optimizer, self.recipe
        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing)
        classes = self.spec.num_classes
        weights, ema = self.weights, self.ema

        @tf.function(autograph=False)
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(tf.one_hot(y, classes), logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            if ema:  # TF's ExponentialMovingAverage with num_updates: a short run is not stuck at the init
                t = tf.cast(optimizer.iterations, tf.float32)
                decay = tf.minimum(recipe.ema_decay, (1.0 + t) / (10.0 + t))
                flat = tf.concat([tf.reshape(w.value, [-1]) for w in weights], 0)
                ema[0].assign(decay * ema[0] + (1.0 - decay) * flat)
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.cast(y, tf.int64)), tf.float32))
            return loss, hits

        return step

    def epoch_dataset(self, epoch: int):
        """(dataset, order) of one epoch: seeded order, augmentation seeded per batch, prefetched."""
        r = self.recipe
        rng = np.random.default_rng([r.seed, epoch])
        order = rng.permutation(self.data.train_count)[:r.steps_per_epoch * r.batch_size]
        order = order.reshape(r.steps_per_epoch, r.batch_size)
        ds = self.data.train_batches(order)
        if r.augment_pad or r.flip:
            base = tf.constant(r.seed * 100_003 + epoch, tf.int64)
            ds = ds.enumerate().map(
                lambda i, xy: (augment_batch(xy[0], tf.stack([base, i]), r.augment_pad, r.flip), xy[1]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE), order

    def run_epoch(self, epoch: int, on_step: Callable[[int, float], None]) -> dict:
        ds, order = self.epoch_dataset(epoch)
        losses, hits, first_s = [], 0.0, 0.0
        start = time.perf_counter()
        for i, (x, y) in enumerate(iterate(ds, self.data.files_of(order), self.recipe.batch_size)):
            ts = time.perf_counter()
            loss, h = self._step(x, y)
            losses.append(float(loss))
            hits += float(h)
            if i == 0:
                first_s = time.perf_counter() - ts
            on_step(i + 1, losses[-1])
        seconds = time.perf_counter() - start
        images = len(losses) * self.recipe.batch_size
        # the first step of a process includes the trace: throughput is the steady state after it
        steady = (images - self.recipe.batch_size) / max(seconds - first_s, 1e-9) if len(losses) > 1 else 0.0
        return {"train_loss": float(np.mean(losses)), "train_accuracy": hits / max(images, 1),
                "seconds": seconds, "first_step_s": first_s, "images_per_s": steady,
                "lr": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))}

    def evaluation_weights(self) -> None:
        """EMA (or raw) weights into the eval model, then its BN statistics re-estimated."""
        if self.ema:
            flat, start = self.ema[0].numpy(), 0
            for target in self.eval_model.weights:
                size = int(np.prod(target.shape))
                target.assign(flat[start:start + size].reshape(target.shape))
                start += size
        else:
            for target, source in zip(self.eval_model.weights, self.weights):
                target.assign(source.value)
        if self.recipe.bn_recal_batches:
            self._recalibrate()

    def _recalibrate(self) -> None:
        r = self.recipe
        batches = min(r.bn_recal_batches, r.steps_per_epoch)
        order = np.random.default_rng([r.seed, 99_991]).permutation(self.data.train_count)
        order = order[:batches * r.batch_size].reshape(batches, r.batch_size)
        sums = [[0.0, 0.0] for _ in self._bns]
        saved = [bn.momentum for bn in self._bns]
        for bn in self._bns:
            bn.momentum = 0.0  # read when the (one, fixed-shape) trace is made: each call stores its batch's stats
        try:
            for x, _ in iterate(self.data.train_batches(order), self.data.files_of(order), r.batch_size):
                self._bn_forward(x)
                for acc, bn in zip(sums, self._bns):
                    acc[0] = acc[0] + bn.moving_mean.numpy()
                    acc[1] = acc[1] + bn.moving_variance.numpy()
        finally:
            for bn, momentum in zip(self._bns, saved):
                bn.momentum = momentum  # the saved model.keras keeps the builder's momentum
        for acc, bn in zip(sums, self._bns):
            bn.moving_mean.assign(acc[0] / batches)
            bn.moving_variance.assign(acc[1] / batches)

    def val_accuracy(self) -> float:
        correct = 0
        for x, y in iterate(self.data.val_batches(EVAL_BATCH), self.data.files_of(None), EVAL_BATCH):
            correct += int(np.sum(np.argmax(self._infer(x).numpy(), -1) == y.numpy()))
        return correct / max(self.data.val_count, 1)

    def representative(self, count: int) -> np.ndarray:
        """`count` training images, unaugmented, in a seeded order: int8 calibration data."""
        r = self.recipe
        count = min(count, self.data.train_count)
        order = np.random.default_rng([r.seed, 7]).permutation(self.data.train_count)[:count][None]
        return np.concatenate([x.numpy() for x, _ in iterate(self.data.train_batches(order),
                                                               self.data.files_of(order), count)])


def pipeline_rate(loop: Loop, batches: int) -> float:
    """Images/s of the input pipeline alone (read, decode, resize, augment, batch) over `batches` batches."""
    ds, order = loop.epoch_dataset(0)
    start, seen = time.perf_counter(), 0
    for x, _ in iterate(ds.take(batches), loop.data.files_of(order), loop.recipe.batch_size):
        seen += int(x.shape[0])
    return seen / max(time.perf_counter() - start, 1e-9)


def run_training(loop: Loop, out: Path, state: dict, resume: dict | None,
                 progress: Callable[[str, int, int, str], None]) -> Trained:
    """Train from the checkpoint's epoch (or 0) to the end; checkpoint after every epoch.

    `state`: what the checkpoint must agree with to be resumed (checked by the caller); `progress(kind, done,
    total, text)` is called per step."""
    r = loop.recipe
    history, resumed_from, start_epoch = [], [], 0
    if resume is not None:
        restore_checkpoint(out, loop.groups())
        history, resumed_from = list(resume["history"]), list(resume.get("resumed_from", []))
        start_epoch = int(resume["epoch"])
        if start_epoch < r.epochs:
            resumed_from.append(start_epoch)
    total = r.epochs * r.steps_per_epoch
    val = history[-1]["val_accuracy"] if history else None
    for epoch in range(start_epoch, r.epochs):
        def on_step(step: int, loss: float, epoch=epoch) -> None:
            shown = "-" if val is None else f"{val:.4f}"
            progress("step", epoch * r.steps_per_epoch + step, total,
                     f"epoch {epoch + 1}/{r.epochs} loss {loss:.3f} val {shown}")

        row = loop.run_epoch(epoch, on_step)
        t0 = time.perf_counter()
        loop.evaluation_weights()
        val = loop.val_accuracy()
        row = {"epoch": epoch + 1, **row, "val_accuracy": val, "eval_s": time.perf_counter() - t0}
        history.append(row)
        save_checkpoint(out, loop.groups(), {**state, "epoch": epoch + 1, "history": history,
                                             "resumed_from": resumed_from})
    if start_epoch == r.epochs:  # finished before: only the eval model is to be rebuilt
        loop.evaluation_weights()
        val = loop.val_accuracy()
    accuracy = float(val)
    seconds = float(sum(h["seconds"] + h["eval_s"] for h in history))
    return Trained(loop.eval_model, history, accuracy, resumed_from, seconds)
