"""Stand-alone proxy training (MnasNet style): build the child, train it E epochs, recalibrate BN, score it.

The child is the searched spec with only the proxy setting swapped in (`resolution=proxy_resolution`,
`num_classes=data.num_classes`): same blocks, same widths, so the network that is scored is the one whose
latency is measured (at the target resolution).

Why BN recalibration: Keras BatchNormalization keeps moving averages with momentum 0.99. After a short proxy
training (~100 steps) they are still close to their initial values (mean 0, variance 1), so inference-mode
accuracy sits near chance while training accuracy is high. Before scoring we reset every BN layer's moving
statistics and re-estimate them as the exact (cumulative) average over a few training batches, with the final
weights frozen. `detail["accuracy_before_bn_recal"]` keeps the inference accuracy before that step, to show it.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from mnas.data import ProxyData
from mnas.errors import UserError
from mnas.evaluators.base import EvalResult
from mnas.hparams import check_hparams, shift_images, spec_hparams
from mnas.runstore import MemoryCache, ResultCache, spec_key
from mnas.spec import ModelSpec
from mnas.tfgraphs import forget_custom_gradients, grappler_off

OPTIMIZERS = ("adam", "rmsprop")


class StandaloneEvaluator:
    name = "standalone"

    def __init__(self, data: ProxyData, epochs: int = 1, batch_size: int = 128, proxy_resolution: int = 32,
                 seed: int = 0, cache: ResultCache | None = None, learning_rate: float = 2e-3,
                 optimizer: str = "adam", recal_batches: int = 4, grappler: bool = False,
                 weight_decay: float = 0.0, label_smoothing: float = 0.0, dropout: float | None = None,
                 augment: int = 0) -> None:
        if epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {epochs}")
        if batch_size < 2:
            raise UserError(f"--batch-size must be >= 2, got {batch_size}")
        if optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer {optimizer!r} not in {OPTIMIZERS}")
        if data.resolution != proxy_resolution:
            raise UserError(f"proxy data is {data.resolution}px but --proxy-resolution is {proxy_resolution}")
        self.data = data
        self.epochs, self.batch_size, self.proxy_resolution = epochs, batch_size, proxy_resolution
        self.seed, self.learning_rate, self.optimizer = seed, learning_rate, optimizer
        self.recal_batches = recal_batches
        self.grappler = bool(grappler)  # off by default: see mnas.tfgraphs.grappler_off
        # training hyperparameters (mnas.hparams); a spec carrying its own (extra["hparams"]) overrides them
        self.weight_decay, self.label_smoothing, self.dropout, self.augment = weight_decay, label_smoothing, \
            dropout, augment
        self._recipe()  # bad values: one UserError line now, not after a search
        self.cache = cache if cache is not None else MemoryCache()
        self._data_fingerprint = data.fingerprint()

    def settings(self) -> dict:
        return self._settings(self._recipe())

    def _settings(self, recipe: dict) -> dict:
        # a hyperparameter at its default adds no key (dropout is in the spec itself): cache keys of runs made
        # before hyperparameters existed stay valid
        return {"evaluator": self.name, "epochs": self.epochs, "batch_size": self.batch_size,
                "proxy_resolution": self.proxy_resolution, "seed": self.seed, "lr": recipe["learning_rate"],
                "optimizer": self.optimizer, "recal_batches": self.recal_batches, "grappler": self.grappler,
                "data": self._data_fingerprint,
                "train": len(self.data.y_train), "val": len(self.data.y_val)} | \
            {k: recipe[k] for k in ("weight_decay", "label_smoothing", "augment") if recipe[k]}

    def _recipe(self, spec: ModelSpec | None = None) -> dict:
        """The hyperparameters `spec` trains with: this evaluator's, overridden by those the spec carries."""
        own = {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
               "label_smoothing": self.label_smoothing, "augment": self.augment} | \
            ({} if self.dropout is None else {"dropout": self.dropout})
        return {"dropout": None} | check_hparams(own, "stand-alone trainer") | \
            (spec_hparams(spec) if spec is not None else {})

    def proxy_spec(self, spec: ModelSpec) -> ModelSpec:
        return spec.replace(resolution=self.proxy_resolution, num_classes=self.data.num_classes)

    def evaluate(self, specs: Sequence[ModelSpec]) -> list[EvalResult]:
        return [self._evaluate_one(spec) for spec in specs]

    def _evaluate_one(self, spec: ModelSpec) -> EvalResult:
        start = time.perf_counter()
        recipe = self._recipe(spec)
        child = self.proxy_spec(spec)
        if recipe["dropout"] is not None:
            child = child.replace(dropout=recipe["dropout"])
        key = spec_key(child, **self._settings(recipe))
        hit = self.cache.get(key)
        if hit is not None:
            return EvalResult(hit["accuracy"], time.perf_counter() - start, True, hit["detail"])
        accuracy, detail = self.train_and_score(child, recipe=recipe)
        self.cache.put(key, {"accuracy": accuracy, "detail": detail})
        return EvalResult(accuracy, time.perf_counter() - start, False, detail)

    # -- the TF part ------------------------------------------------------------------------------------
    def train_and_score(self, child: ModelSpec, recalibrate: bool = True, recipe: dict | None = None
                        ) -> tuple[float, dict]:
        """Train `child` from scratch with `recipe` (default this evaluator's hyperparameters; its dropout is
        the child's own) and return (validation accuracy, detail with the time breakdown); its graphs are freed
        afterwards (`forget_custom_gradients`)."""
        with forget_custom_gradients(), grappler_off(enabled=not self.grappler):
            return self._train_and_score(child, recalibrate, recipe or self._recipe())

    def _train_and_score(self, child: ModelSpec, recalibrate: bool, recipe: dict) -> tuple[float, dict]:
        """Train `child` from scratch and return (validation accuracy, detail with the time breakdown).

        A hand-written loop of `tf.function(autograph=False)` steps, not `model.fit`: tracing Keras' fit
        function took ~55 s per child on the shared 2-core machine against ~8 s for this step (measured with
        mnasnet-a1 at 32px), and every child is a new graph, so the trace is paid once per child.
        Batches have one fixed shape (the last partial training batch is dropped, the last validation batch
        padded) so each function is traced once.
        """
        import keras
        import tensorflow as tf

        from mnas.builder import build_keras

        keras.backend.clear_session()  # each child in a fresh graph: no memory growth over a long search
        _quiet_retracing()
        keras.utils.set_random_seed(self.seed)
        d = self.data
        t0 = time.perf_counter()
        model = build_keras(child, seed=self.seed)
        _zero_classifier(model)
        opt_cls = keras.optimizers.Adam if self.optimizer == "adam" else keras.optimizers.RMSprop
        optimizer = opt_cls(learning_rate=recipe["learning_rate"])
        optimizer.build(model.trainable_variables)
        loss_fn = _loss_fn(d.num_classes, recipe["label_smoothing"])
        penalty = _l2_penalty(model.trainable_variables, recipe["weight_decay"])

        @tf.function(autograph=False)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                total = loss if penalty is None else loss + penalty()
            grads = tape.gradient(total, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.cast(y, tf.int64)), tf.float32))
            return loss, hits

        batch = min(self.batch_size, len(d.y_train))
        steps_per_epoch = len(d.y_train) // batch
        rng = np.random.default_rng(self.seed)
        shift_rng = np.random.default_rng([self.seed, 7])  # its own stream: the batch order stays the recipe's
        t1 = time.perf_counter()
        losses, hits, seen, first_step_s = [], 0.0, 0, 0.0
        for epoch in range(self.epochs):
            order = rng.permutation(len(d.y_train))
            losses, hits, seen = [], 0.0, 0
            for s in range(steps_per_epoch):
                idx = order[s * batch:(s + 1) * batch]
                ts = time.perf_counter()
                x = shift_images(d.x_train[idx], recipe["augment"], shift_rng)
                loss, h = train_step(tf.constant(x), tf.constant(d.y_train[idx]))
                if epoch == 0 and s == 0:
                    first_step_s = time.perf_counter() - ts  # mostly the trace of the step function
                losses.append(float(loss))
                hits += float(h)
                seen += len(idx)
        t2 = time.perf_counter()
        infer = tf.function(lambda x: model(x, training=False), autograph=False)
        before = _accuracy(infer, d.x_val, d.y_val, self.batch_size * 4)
        t3 = time.perf_counter()
        after = before
        if recalibrate:
            recalibrate_bn(model, d.x_train, self.batch_size * 4, self.recal_batches, self.seed)
            after = _accuracy(infer, d.x_val, d.y_val, self.batch_size * 4)
        t4 = time.perf_counter()
        detail = {"build_s": t1 - t0, "train_s": t2 - t1, "first_step_s": first_step_s, "bn_recal_s": t4 - t3,
                  "score_s": t3 - t2,
                  "train_accuracy": hits / max(seen, 1), "train_loss": float(np.mean(losses)) if losses else None,
                  "accuracy_before_bn_recal": before, "params": int(model.count_params()),
                  "steps": self.epochs * steps_per_epoch}
        keras.backend.clear_session()
        return after, detail


def _loss_fn(classes: int, smoothing: float):
    """Cross-entropy on logits; with label smoothing, against (1 - s) one-hot + s / classes."""
    import keras
    import tensorflow as tf

    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    return lambda y, logits: smoothed(tf.one_hot(y, classes), logits)


def _l2_penalty(variables, weight_decay: float):
    """() -> wd/2 * sum ||w||^2 over the kernels (rank >= 2: not biases, not BN), or None without decay."""
    import tensorflow as tf

    kernels = [v for v in variables if len(v.shape) >= 2]
    if not weight_decay or not kernels:
        return None
    return lambda: 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in kernels])


class _NoRetraceWarning:  # a logging.Filter
    """Every child is a new graph by design, so TF's "triggered tf.function retracing" advice is noise here."""

    @staticmethod
    def filter(record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing() -> None:
    import logging

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetraceWarning) for f in logger.filters):
        logger.addFilter(_NoRetraceWarning())


def recalibrate_bn(model, x: np.ndarray, batch_size: int, batches: int, seed: int = 0) -> int:
    """Re-estimate every BatchNormalization layer's moving mean/variance from up to `batches` training batches.

    Each batch runs in training mode with momentum 0 (so the moving statistics become that batch's statistics,
    weights untouched); the final statistics are the plain mean over the batches. Returns batches used.
    """
    import keras
    import tensorflow as tf

    bns = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    batch_size = min(batch_size, len(x))
    n = max(1, min(batches, len(x) // batch_size))
    order = np.random.default_rng(seed).permutation(len(x))
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0  # read when the function below is traced
    forward = tf.function(lambda v: model(v, training=True), autograph=False)
    sums = [[np.zeros(bn.moving_mean.shape), np.zeros(bn.moving_variance.shape)] for bn in bns]
    try:
        for b in range(n):
            forward(tf.constant(x[order[b * batch_size:(b + 1) * batch_size]]))
            for acc, bn in zip(sums, bns):
                acc[0] += bn.moving_mean.numpy()
                acc[1] += bn.moving_variance.numpy()
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m
    for acc, bn in zip(sums, bns):
        bn.moving_mean.assign(acc[0] / n)
        bn.moving_variance.assign(acc[1] / n)
    return n


def _zero_classifier(model) -> None:
    """Zero the classifier kernel: the builder's init (uniform, scaled by fan_out = classes) is sized for 1000
    classes; with 10 it makes initial logits large (first-epoch loss ~6, train accuracy ~0.16 after 63 steps on
    mnasnet-a1, measured), zero gives uniform initial predictions and 0.5-0.7 after the same steps."""
    try:
        dense = model.get_layer("classifier")
    except ValueError:
        return
    kernel, *rest = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), *rest])


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def _accuracy(infer, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Top-1 accuracy with one fixed batch shape (the last batch is padded, its padding ignored)."""
    import tensorflow as tf

    batch_size = min(batch_size, len(x))
    correct = 0
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
        logits = infer(tf.constant(chunk)).numpy()[:n]
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[start:start + n]))
    return correct / len(x)


def seeded_trainer(data: ProxyData, epochs: int, batch_size: int, learning_rate: float,
                   cache: ResultCache | None = None):
    """(spec, seed) -> (accuracy, seconds): the same stand-alone training under several seeds (one evaluator per
    seed, results cached by spec + settings, so a resumed comparison trains nothing again). A spec carrying
    hyperparameters (an `HparamSpace` pick) trains with them."""
    evaluators: dict[int, StandaloneEvaluator] = {}

    def train(spec: ModelSpec, seed: int) -> tuple[float, float]:
        if seed not in evaluators:
            evaluators[seed] = StandaloneEvaluator(data, epochs=epochs, batch_size=batch_size,
                                                   proxy_resolution=data.resolution, seed=seed, cache=cache,
                                                   learning_rate=learning_rate)
        result = evaluators[seed].evaluate([spec])[0]
        return result.accuracy, result.seconds

    return train
