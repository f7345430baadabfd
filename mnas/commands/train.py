"""`mnas train`: train an architecture fully, export float32 + int8 TFLite checked for accuracy, write a model card.

    mnas train ARCH [--data DIR|FILE.npz|mnist-clutter] [--epochs 10] --out DIR [--batch-size 64]
               [--optimizer adamw|rmsprop|sgd] [--lr LR] [--schedule cosine|exponential|constant] ...
               [--device ID]... [--table FILE]... [--threads 1] [--no-export] [--json] [--no-progress]

ARCH: a zoo name, an architecture file, or a search's run directory (its pick). Run the same command again after
an interruption (kill -9 included) and it continues from the last finished epoch. The work is in
`mnas.training`; this module parses flags and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnas.commands._common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train an architecture, export float32/int8 TFLite, write a model card",
                              description="The standard mobile recipe; per-epoch checkpoints (rerun to resume); "
                                          "int8 and float TFLite evaluated with LiteRT; latency; MODEL_CARD.md.")
    p.add_argument("arch", metavar="ARCH", help="zoo name, architecture file, or a search's run directory")
    p.add_argument("--data", help="a folder of class folders (optionally train/ and val/), a .npz with x, y, or "
                                  "mnist-clutter (default: the shipped 5,000-image MNIST proxy)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--out", required=True, type=Path, help="output directory (checkpoint, files, model card)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the data's; a folder: the arch's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation share without a val/ folder")
    p.add_argument("--train-size", type=int, help="use only this many training images")
    p.add_argument("--val-size", type=int, help="use only this many validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", default="adamw", help="adamw | rmsprop | sgd (default adamw)")
    p.add_argument("--lr", type=float, help="peak learning rate (default per optimizer, scaled by batch / 64)")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay (default per optimizer)")
    p.add_argument("--schedule", default="cosine", help="cosine | exponential | constant (default cosine)")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--decay-rate", type=float, default=0.97, help="exponential: factor per --decay-epochs")
    p.add_argument("--decay-epochs", type=float, default=2.4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--dropout", type=float, help="classifier dropout (default: the architecture's)")
    p.add_argument("--drop-connect", type=float, help="drop-connect rate (default 0.2 for efficientnet/mixnet, else 0)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random translation or flip")
    p.add_argument("--flip", dest="flip", action="store_true", default=None, help="random horizontal flips")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no flips (default for the digit proxies)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the weights (0: off; default 0.999)")
    p.add_argument("--bn-recal-batches", type=int, default=8, help="re-estimate BN statistics (0: off)")
    p.add_argument("--representative", type=int, default=200, help="int8 calibration images (default 200)")
    p.add_argument("--device", dest="devices", action="append", default=[], metavar="ID",
                   help="profile the exported files on this device (host, serial, HOST:PORT); repeatable")
    p.add_argument("--table", dest="tables", action="append", default=[], metavar="FILE",
                   help="predict the float32 network's latency from this table; repeatable")
    p.add_argument("--threads", type=int, default=1, help="threads for on-device profiling (default 1)")
    p.add_argument("--no-export", dest="export", action="store_false", help="train only: no TFLite, no latency")
    p.add_argument("--no-grappler", dest="grappler", action="store_false",
                   help="TF's graph optimiser off for the training steps (a faster first step; default on)")
    p.add_argument("--json", action="store_true", help="print the model card as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from mnas.training import TrainConfig, train

    cfg = TrainConfig(
        arch=args.arch, out=args.out, epochs=args.epochs, data=args.data, resolution=args.resolution,
        batch_size=args.batch_size, val_fraction=args.val_fraction, train_size=args.train_size,
        val_size=args.val_size, seed=args.seed, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        decay_rate=args.decay_rate, decay_epochs=args.decay_epochs, label_smoothing=args.label_smoothing,
        dropout=args.dropout, drop_connect=args.drop_connect, augment=args.augment, flip=args.flip,
        ema_decay=args.ema_decay, bn_recal_batches=args.bn_recal_batches, export=args.export,
        representative=args.representative, devices=tuple(args.devices), tables=tuple(args.tables),
        threads=args.threads, progress=not args.no_progress, grappler=args.grappler)
    card = train(cfg)
    if args.json:
        print_json(card)
        return 0
    acc = card["accuracy"]
    print(f"{card['name']}: {card['training']['epochs']} epochs, {card['training']['seconds']:.1f} s; accuracy "
          + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    for row in card["latency"]:
        print(f"  {row['device']} {row['file']}: {row['median_ms']:.3f} ms ({row['how']})")
    print(f"model card: {Path(args.out) / 'MODEL_CARD.md'}")
    return 0
