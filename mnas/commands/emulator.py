"""`mnas emulator`: run the emulated phone (an ADB daemon on 127.0.0.1) in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "emulator", help="run an emulated phone (ADB daemon on 127.0.0.1) whose benchmark_model runs LiteRT",
        description="Run an emulated Android phone on 127.0.0.1 that speaks the ADB protocol (adb and adb-shell "
                    "clients). Its benchmark_model runs the pushed model in LiteRT on this host; it reports "
                    "itself as emulated (ro.mnas.emulated=1). Ctrl-C stops it.")
    parser.add_argument("--port", type=int, default=5555, help="TCP port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--profile", metavar="FILE", help="phone profile JSON (see docs/emulator.md)")
    parser.add_argument("--sandbox", metavar="DIR",
                        help="host directory holding the phone's files (default: a temporary one, removed on exit)")
    parser.add_argument("--drop-after-bytes", type=int, metavar="N",
                        help="fault: close each connection once N bytes have crossed it (both directions)")
    parser.add_argument("--drop-connections", type=int, metavar="K",
                        help="fault: apply --drop-after-bytes to the first K connections only")
    parser.add_argument("--slow-bps", type=int, metavar="N", help="fault: cap each direction at N bytes/s")
    parser.add_argument("--reject-auth", action="store_true",
                        help="fault: refuse every key, as a phone whose user taps Deny")
    parser.add_argument("--allow-key", action="append", metavar="ADBKEY_PUB",
                        help="accept only these public keys (adbkey.pub files); repeatable")
    parser.add_argument("--no-auth", action="store_true", help="answer CNXN directly, without AUTH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from devices.emulator import EmulatedPhone, FaultKnobs, PhoneProfile
    from mnas.errors import UserError

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    profile = PhoneProfile.load(args.profile) if args.profile else PhoneProfile()
    knobs = FaultKnobs(drop_after_bytes=args.drop_after_bytes, drop_connections=args.drop_connections,
                       slow_bps=args.slow_bps, reject_auth=args.reject_auth)
    allowed = None
    if args.allow_key:
        allowed = []
        for path in args.allow_key:
            try:
                allowed.append(Path(path).read_text())
            except OSError as err:
                raise UserError(f"cannot read --allow-key {path}: {err.strerror}") from None
    try:
        phone = EmulatedPhone(args.port, profile=profile, sandbox=args.sandbox, knobs=knobs,
                              require_auth=not args.no_auth, allowed_keys=allowed)
    except ValueError as err:
        raise UserError(f"bad --allow-key: {err}") from None
    phone.start()
    # SIGTERM stops it like Ctrl-C, so a temporary sandbox is still removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"emulated phone listening on {phone.serial} (port {phone.port}); sandbox {phone.sandbox}", flush=True)
    print(f"  adb connect {phone.serial}", flush=True)
    try:
        phone.serve_forever()
    except KeyboardInterrupt:
        print("emulated phone stopped", file=sys.stderr)
    return 0
