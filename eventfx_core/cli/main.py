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
    "realbench": "eventfx_core.cli.realbench",
    "calibrate": "eventfx_core.cli.calibrate",
    "replay": "eventfx_ros.replay_cli",
}
# One line per command for `eventfx --help` (kept here so the listing imports nothing).
SUMMARIES = {
    "info": "describe a recording: format, topics, sensor, rates",
    "convert": "convert between bags, DSEC h5, archive and .raw",
    "denoise": "denoise (and deflare) a recording offline",
    "generate": "write a labelled synthetic training set",
    "train": "train the denoiser or the deflarer",
    "evaluate": "score methods on labelled test archives",
    "bench": "measure events/s and latency of every stage",
    "realbench": "benchmark denoisers on real recordings with injected noise",
    "calibrate": "fit a camera's noise model from its dark recording",
    "replay": "replay a ROS 2 bag through the node over DDS",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from .. import __version__

    # The command list is written here, one line each (argparse wraps long names onto two).
    width = max(map(len, COMMANDS)) + 2
    table = "\n".join(f"  {name:<{width}}{SUMMARIES.get(name, f'see eventfx {name} --help')}"
                      for name in COMMANDS)
    parser = argparse.ArgumentParser(
        prog="eventfx", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Clean event-camera streams: convert, denoise, deflare, synthesise, train,\n"
                    f"evaluate, replay, bench.\n\ncommands:\n{table}",
        epilog="eventfx COMMAND --help describes the options of each command.")
    parser.add_argument("--version", action="version", version=f"eventfx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="one of the commands above")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, module in COMMANDS.items():
        # Import only the requested command; `eventfx --help` lists the names without imports.
        if name != wanted:
            sub.add_parser(name)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                parser.error(f"command {name!r} is not available in this installation")
            raise
        mod.add_parser(sub)
        _plain_help(sub.choices[name])
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Help texts come from docstrings: show them without RST double backticks."""
    from .common import plain

    if parser.description:
        parser.description = plain(parser.description)
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain(action.help)


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
        _end_progress_bars()
        print(f"eventfx: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, always
        return 2
    except BrokenPipeError:  # `eventfx info x | head`: the reader went away, not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        _end_progress_bars()
        print("eventfx: interrupted", file=sys.stderr)
        return 130


def _end_progress_bars() -> None:
    """Close any progress bar still drawn, so the error starts on its own line."""
    tqdm_mod = sys.modules.get("tqdm")
    if tqdm_mod is None:
        return
    for bar in list(getattr(tqdm_mod.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar that cannot be drawn any more: nothing to end
            pass


if __name__ == "__main__":
    sys.exit(main())
