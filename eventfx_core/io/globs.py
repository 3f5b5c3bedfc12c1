"""The one glob expander for file lists in configs (training and evaluation data).

Rules: ``~`` is expanded; a relative pattern is relative to ``base`` (the config's folder);
``**`` matches any depth; each pattern's matches are sorted, patterns keep their order, and a
file matched twice is listed once; a pattern that matches nothing is a ``ConfigError`` naming
it (a typo in one pattern must not silently shrink a data set).
"""
from __future__ import annotations

import glob
from pathlib import Path

from ..errors import ConfigError


def expand_globs(patterns: list[str] | str, base: Path | str, where: str, hint: str = "") -> list[Path]:
    """Files matching ``patterns`` (see the module docstring); ``where`` names the config key."""
    if isinstance(patterns, str):
        patterns = [patterns]
    base = Path(base)
    out: list[Path] = []
    seen: set[Path] = set()
    for pat in patterns:
        p = Path(str(pat)).expanduser()
        full = p if p.is_absolute() else base / p
        hits = sorted(Path(m) for m in glob.glob(str(full), recursive=True))
        hits = [h for h in hits if h.is_file()]
        if not hits:
            raise ConfigError(f"{where}: {str(pat)!r} matches no file (relative to {base})"
                              + (f"; {hint}" if hint else ""))
        for h in hits:
            if h not in seen:
                seen.add(h)
                out.append(h)
    return out
