"""`autohas`: architecture and training hyperparameters searched together on shared weights (AutoHAS, Dong et al.).

The search space is an `HparamSpace` (mnas.hparams): each child is an architecture of the base space plus one value
per hyperparameter (learning rate, weight decay, label smoothing, dropout, augmentation). Per child:

1. W* = a copy of the shared weights W, trained `child_steps` (K) steps on the child's path with the child's
   hyperparameters (a fresh Adam at its learning rate; L2, label smoothing, dropout before the classifier, shifted
   images); every child gets the same K batches (common random numbers: children differ by what they are, not by
   batch luck);
2. the child's accuracy = W*'s on the fixed held-out batch (the controller's reward goes through the search's
   latency-aware `Reward`, so AutoHAS here is latency-aware, which the paper is not);
3. W* is discarded: W is put back exactly (`tests/test_autohas.py` checks every weight);
4. the shared-weight update: `shared_steps` steps of W on the child's path with the default recipe (the supernet
   evaluator's Adam and learning rate), so search alternates W updates and controller updates.

Everything else is the supernet evaluator's (mnas.supernet.evaluator): the model, W warm-up, the held-out batch,
the checkpoint (`state_dir/supernet.npz`, written every `checkpoint_every` calls, loaded on construction; the
settings carry the grid and K, so a resume with another grid is refused).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from mnas.data import ProxyData
from mnas.errors import UserError
from mnas.evaluators.base import EvalResult
from mnas.hparams import DEFAULT_GRID, HparamSpace, defaults, shift_images, spec_hparams
from mnas.spaces.base import Sample, Space
from mnas.spec import ModelSpec
from mnas.supernet.evaluator import Adam, SupernetEvaluator, _state_dir_of, sample_of


def joint_space(space: HparamSpace | Space | str | None) -> HparamSpace:
    """The joint space to search: `space` itself, or a plain space with the default grid."""
    from mnas import spaces

    if space is None:
        raise UserError("the autohas evaluator needs the search space (--space)")
    if isinstance(space, HparamSpace):
        return space
    return HparamSpace(space if isinstance(space, Space) else spaces.get(str(space)), DEFAULT_GRID)


class AutoHASEvaluator(SupernetEvaluator):
    name = "autohas"

    def __init__(self, data: ProxyData, space: HparamSpace | Space | str | None = None, child_steps: int = 5,
                 shared_steps: int = 5, warmup_steps: int = 0, batch_size: int = 64, val_batch: int = 500,
                 proxy_resolution: int = 32, learning_rate: float = 1e-3, seed: int = 0,
                 state_dir: str | Path | None = None, checkpoint_every: int = 10, routing: str | None = None,
                 grappler: bool = False, cache: object | None = None) -> None:
        if child_steps < 1:
            raise UserError(f"autohas child_steps must be >= 1, got {child_steps}")
        self.joint = joint_space(space)
        self.child_steps = int(child_steps)
        run_dir = _state_dir_of(cache)  # <run>/supernet when `cache` is a run store's: ours is <run>/autohas
        if state_dir is None and run_dir is not None:
            state_dir = run_dir.parent / self.name
        super().__init__(data, space=self.joint.base, steps_per_child=shared_steps, warmup_steps=warmup_steps,
                         batch_size=batch_size, val_batch=val_batch, proxy_resolution=proxy_resolution,
                         learning_rate=learning_rate, seed=seed, state_dir=state_dir,
                         checkpoint_every=checkpoint_every, routing=routing, grappler=grappler)

    def settings(self) -> dict:
        out = super().settings()
        out["shared_steps"] = out.pop("steps_per_child")
        return out | {"child_steps": self.child_steps, "hparams": {k: list(v) for k, v in self.joint.grid.items()}}

    # -- protocol ----------------------------------------------------------------------------------------
    def evaluate(self, specs: Sequence[ModelSpec]) -> list[EvalResult]:
        # refuse bad specs before training anything
        jobs = [(sample_of(self.space, spec), defaults() | spec_hparams(spec)) for spec in specs]
        warmup_s = 0.0 if self.warmed_up else self.warmup()
        results = [self._one(arch, hp, warmup_s if i == 0 else 0.0) for i, (arch, hp) in enumerate(jobs)]
        self.calls += 1
        if self.calls % self.checkpoint_every == 0:
            self.save()
        return results

    def _one(self, arch: Sample, hparams: dict, warmup_s: float) -> EvalResult:
        t0 = time.perf_counter()
        accuracy, child_loss = self.child_score(arch, hparams)
        t1 = time.perf_counter()
        shared_loss = self.train_path(arch, self.steps_per_child)
        t2 = time.perf_counter()
        detail = {"child_s": t1 - t0, "shared_s": t2 - t1, "warmup_s": warmup_s, "child_loss": child_loss,
                  "shared_loss": shared_loss, "supernet_steps": self.steps, "hparams": hparams, "one_shot": True}
        return EvalResult(accuracy, t2 - t0 + warmup_s, False, detail)

    # -- W* -------------------------------------------------------------------------------------------------
    def child_score(self, arch: Sequence[int], hparams: dict) -> tuple[float, float]:
        """(held-out accuracy, last loss) of W* = W trained K steps on the path `arch` with `hparams`; W, its
        Adam moments and the evaluator's rng are left as they were."""
        import tensorflow as tf

        if not self.warmed_up:
            self.warmup()
        path = tf.constant(np.asarray(self.space.validate(arch), np.int32))
        scalars = [tf.constant(float(hparams[k]), tf.float32) for k in ("weight_decay", "label_smoothing",
                                                                          "dropout")]
        batches = np.random.default_rng([self.seed, 2])  # the same K batches for every child
        noise = np.random.default_rng([self.seed, 3])  # shifts and dropout masks: apart, so batches stay common
        n = len(self.data.y_train)
        loss = float("nan")
        self._begin_child()
        try:
            self._child_lr.assign(float(hparams["learning_rate"]))
            for _ in range(self.child_steps):
                idx = batches.choice(n, size=min(self.batch_size, n), replace=False)
                x = shift_images(self.data.x_train[idx], int(hparams["augment"]), noise)
                seed = tf.constant(noise.integers(0, 2 ** 31 - 1, size=2), tf.int64)
                with self._graph_options():
                    loss = float(self._child_step(tf.constant(x), tf.constant(self.data.y_train[idx]), path,
                                                  *scalars, seed))
            accuracy = self.score(arch)
        finally:
            self._end_child()  # W* is discarded whatever happened
        return accuracy, loss

    def _build(self) -> None:
        super()._build()
        import tensorflow as tf

        variables = self.model.trainable_variables
        self._child_lr = tf.Variable(1e-3, trainable=False, dtype=tf.float32, name="child_lr")
        self._child_opt = Adam(variables, self._child_lr)
        self._backup = [tf.Variable(v, trainable=False) for v in variables]
        self._begin_child, self._end_child = _copy_functions(variables, self._backup, self._child_opt)
        self._child_step = self._child_step_function(variables)

    def _child_step_function(self, variables: list):
        import tensorflow as tf

        model, optimizer, classes = self.model, self._child_opt, self.data.num_classes
        kernels = [v for v in variables if len(v.shape) >= 2]  # L2 on kernels, as the stand-alone trainer
        r = self.proxy_resolution
        scalar = tf.TensorSpec([], tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, r, r, 3], tf.float32), tf.TensorSpec([None], tf.int64),
                                      tf.TensorSpec([len(self.space.choices)], tf.int32), scalar, scalar, scalar,
                                      tf.TensorSpec([2], tf.int64)], autograph=False)
        def child_step(x, y, sample, weight_decay, smoothing, rate, seed):
            self.traces += 1
            with tf.GradientTape() as tape:
                feats = features(model, x, sample)
                keep = tf.random.stateless_uniform(tf.shape(feats), seed) >= rate
                feats = tf.where(keep, feats / (1.0 - rate), tf.zeros_like(feats))
                logits = tf.matmul(feats, model.classifier_kernel) + model.classifier_bias
                target = tf.one_hot(y, classes) * (1.0 - smoothing) + smoothing / classes
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
                l2 = 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in kernels])
            grads = tape.gradient(loss + l2, variables)
            optimizer.apply([tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)])
            return loss

        return child_step


def _copy_functions(variables: list, backup: list, optimizer: Adam):
    """(begin, end): begin keeps W in `backup` and gives W* a fresh Adam; end puts W back."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def begin():
        for keep, w in zip(backup, variables):
            keep.assign(w)
        for slot in optimizer.variables:
            slot.assign(tf.zeros_like(slot))

    @tf.function(autograph=False)
    def end():
        for w, keep in zip(variables, backup):
            w.assign(keep)

    return begin, end


def features(model, images, sample):
    """The input of the supernet's classifier matmul (where dropout goes): its forward pass up to the pooled
    (and, for MobileNetV3, final-conv) features. Mirrors the heads of `Supernet._forward` and
    `LayerwiseSupernet._forward`; `tests/test_autohas.py` checks features @ classifier == the model's logits."""
    import tensorflow as tf

    from mnas.supernet.layerwise import LayerwiseSupernet, _act
    from mnas.supernet.model import _bn

    x = model.stage_outputs(images, sample)[-1]
    x = tf.nn.conv2d(x, model.head_kernel, 1, "SAME")
    if not isinstance(model, LayerwiseSupernet):
        return tf.reduce_mean(tf.nn.relu(_bn(x, *model.head_bn)), axis=[1, 2])
    x = tf.reduce_mean(_act(_bn(x, *model.head_bn), model.head_hswish), axis=[1, 2], keepdims=True)
    if model.final_filters:
        x = _act(tf.nn.conv2d(x, model.final_kernel, 1, "VALID") + model.final_bias, model.head_hswish)
    return tf.reshape(x, [-1, int(x.shape[-1])])


# -- the end of a joint search -------------------------------------------------------------------------------
def hparam_report(setup, store, out_dir: str | Path, data: ProxyData, retrain_epochs: int, batch_size: int,
                  seed: int, learning_rate: float, resolution: int) -> dict:
    """The pick's hyperparameters into best.json (`search.hparams`), and for a one-shot (autohas) search the
    pick retrained alone with them for `retrain_epochs` (0: not retrained; cached in the run store)."""
    from mnas.evaluators.standalone import StandaloneEvaluator
    from mnas.search import latencies, summarize

    best = summarize(setup, store.children())["best"]
    _, hp = setup.space.split(best["sample"])
    path = Path(out_dir) / "best.json"
    doc = json.loads(path.read_text())
    doc.setdefault("search", {})["hparams"] = hp
    path.write_text(json.dumps(doc, indent=2) + "\n")
    report = {"hparams": hp, "best_json": str(path),
              "line": "hyperparameters of the pick: " + ", ".join(f"{k} {v:g}" for k, v in hp.items())}
    if setup.evaluator.name != AutoHASEvaluator.name or retrain_epochs < 1:
        return report
    spec = setup.space.to_spec(best["sample"], resolution=resolution)
    trainer = StandaloneEvaluator(data, epochs=retrain_epochs, batch_size=batch_size, seed=seed,
                                  proxy_resolution=data.resolution, learning_rate=learning_rate,
                                  cache=store.cache("standalone"))
    result = trainer.evaluate([spec])[0]
    reward = setup.reward(result.accuracy, latencies(setup.sources, spec))
    report |= {"retrain": {"epochs": retrain_epochs, "standalone_accuracy": result.accuracy,
                           "standalone_reward": reward, "one_shot_accuracy": best["accuracy"],
                           "cached": result.cached}}
    report["line"] += (f"; retrained alone with them {retrain_epochs} epoch(s): {result.accuracy:.4f} "
                       f"(reward {reward:.4f}; AutoHAS W* accuracy {best['accuracy']:.4f})")
    return report
