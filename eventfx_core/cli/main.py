"""``eventfx`` entry point: dispatches to one module per command.

Each command module defines ``add_parser(subparsers)`` (registers its arguments and sets
``func=run``) and ``run(args) -> int``. User errors (``EventfxError``) print one line and
exit with status 2; nothing else is caught.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import EventfxError

# Command name -> module (imported lazily so `eventfx info` stays fast). `replay` talks DDS,
# so it lives in eventfx_ros: eventfx_core itself never imports rclpy.
COMMANDS = {
    "info": "eventfx_core.cli.info",
    "convert": "eventfx_core.cli.convert",
    "denoise": "eventfx_core.cli.denoise",
    "generate": "eventfx_core.cli.generate",
    "train": "eventfx_core.cli.train",
    "evaluate": "eventfx_core.cli.evaluate",
    "bench": "eventfx_core.cli.bench",
    "replay": "eventfx_ros.replay_cli",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventfx", description="Clean event-camera streams: "
                                     "convert, denoise, deflare, synthesise, train, evaluate, replay, bench.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, module in COMMANDS.items():
        # Import only the requested command; `eventfx --help` lists the names without imports.
        if name != wanted:
            sub.add_parser(name, help=f"(see eventfx {name} --help)")
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                parser.error(f"command {name!r} is not available in this installation")
            raise
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
    except BrokenPipeError:  # `eventfx info x | head`: the reader went away, not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("eventfx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
