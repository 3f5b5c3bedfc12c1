"""``eventfx`` entry point: dispatches to ``eventfx_core.cli.<command>`` modules.

Each command module defines ``add_parser(subparsers)`` (registers its arguments and sets
``func=run``) and ``run(args) -> int``. User errors (``EventfxError``) print one line and
exit with status 2; nothing else is caught.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import EventfxError

# Command name -> module under eventfx_core.cli (imported lazily so `eventfx info` stays fast).
COMMANDS = {
    "info": "info",
    "convert": "convert",
    "denoise": "denoise",
    "generate": "generate",
    "train": "train",
    "evaluate": "evaluate",
    "replay": "replay",
    "bench": "bench",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventfx", description="Clean event-camera streams: "
                                     "convert, denoise, deflare, synthesise, train, evaluate, replay, bench.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [a for a in argv if a in COMMANDS][:1]
    for name, module in COMMANDS.items():
        # Import only the requested command (help lists all names without importing them).
        if wanted and name != wanted[0]:
            sub.add_parser(name)
            continue
        try:
            mod = importlib.import_module(f"eventfx_core.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"eventfx_core.cli.{module}":
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EventfxError as exc:
        print(f"eventfx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eventfx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
