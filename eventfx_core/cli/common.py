"""Options shared by the sub-commands, spelled one way everywhere.

``-q/--quiet`` (no progress bar), ``--overwrite`` (replace an existing output),
``--input-format`` (what IN is, where detection should not decide), ``--output-format`` (what to
write, where the name does not say), ``--salvage`` (read a truncated recording up to its last
complete packet). The old ``--format`` meant the input for ``info`` and the output for
``convert``/``denoise``; it is now an error that names the two new options.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

INPUT_FORMATS = "rosbag2, mcap, rosbag1, dsec, archive, raw, aedat4"
OUTPUT_FORMATS = "rosbag2, mcap, rosbag1, dsec, archive, raw"


class _Renamed(argparse.Action):
    """An old option spelling: one clear usage error that names the new one."""

    def __init__(self, option_strings, dest, new="", **kw):
        self.new = new
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs="?", help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was replaced: use {self.new}")


def add_quiet(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_overwrite(p) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that exist already (never the input)")


def add_salvage(p) -> None:
    p.add_argument("--salvage", action="store_true",
                   help="read a truncated recording up to its last complete packet (with a warning) "
                        "instead of refusing it")


def add_input_format(p, old_spelling: bool = True) -> None:
    p.add_argument("--input-format", dest="input_format", metavar="FORMAT",
                   help=f"format of the input (default: detected): {INPUT_FORMATS}")
    if old_spelling:
        p.add_argument("--format", action=_Renamed, new="--input-format (what the input is)")


def add_output_format(p) -> None:
    p.add_argument("--output-format", dest="output_format", metavar="FORMAT",
                   help=f"format of the output (default: from its name): {OUTPUT_FORMATS}")
    p.add_argument("--format", action=_Renamed,
                   new="--output-format (what to write) or --input-format (what the input is)")


def first_paragraph(doc: str | None) -> str:
    """A module docstring's first paragraph as plain text (no RST double backticks)."""
    return plain((doc or "").split("\n\n")[0].replace("\n", " ").strip())


def plain(text: str) -> str:
    return text.replace("``", "")


@contextmanager
def progress(**kw):
    """A tqdm bar on stderr that is closed (its line ended) before any error is printed."""
    from tqdm import tqdm

    bar = tqdm(file=sys.stderr, **kw)
    try:
        yield bar
    finally:
        bar.close()
