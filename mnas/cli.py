"""`mnas` command line: one entry point, one module per command group under `mnas.commands`.

Each command module exposes `register(subparsers)`, which adds its parsers and sets `func` on them.
Modules import TF (or anything heavy) inside their handlers, so `mnas models` stays fast.
Bad input raises `mnas.errors.UserError`: printed as one line, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mnas.errors import UserError
from mnas.logfilter import StderrFilter

COMMAND_MODULES = ["models", "devices", "emulator", "table", "search", "scale", "farm", "train", "zero"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnas", description="On-device latency-aware architecture search.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow / LiteRT / converter log lines (hidden by default)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # a command module that fails to import is a bug: it is never dropped silently
        importlib.import_module(f"mnas.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # TF's C++ INFO/WARNING lines (oneDNN, CPU features) and LiteRT's delegate banner are noise to a CLI user;
    # `mnas --verbose` shows them. Set before any handler imports TF.
    if args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ["MNAS_VERBOSE"] = "1"
        return _run(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with StderrFilter():  # what TF_CPP_MIN_LOG_LEVEL does not reach (C++ lines logged before absl's init)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        result = args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept (resume with the same command)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
