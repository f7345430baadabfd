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

COMMAND_MODULES = ["models", "devices", "emulator", "table", "search", "scale", "farm"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnas", description="On-device latency-aware architecture search.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mnas.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"mnas.commands.{name}":
                continue  # command group not present in this build
            raise
        module.register(subparsers)
    return parser



def main(argv: list[str] | None = None) -> int:
    # TF's C++ INFO/WARNING lines (oneDNN, CPU features) are noise to a CLI user; TF_CPP_MIN_LOG_LEVEL=0 restores them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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
