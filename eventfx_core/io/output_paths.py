"""Where eventfx may write: the one policy every writer and command uses.

Every output path (a converted or denoised recording, ``--scores``, ``--preview``, summaries,
checkpoints, reports) is checked by ``check_outputs`` before any work starts:

- never an input, a file inside an input (a bag folder's ``.db3``) or a folder holding an input;
- never an existing file or folder unless the user said ``--overwrite``, and the same for a
  temporary ``OUT.partial`` left by an interrupted run (it may hold the only copy of something);
- never two outputs at the same path;
- its parent folders are created here (for every writer alike), or one ``EventfxError`` says
  why they cannot be (a file in the way, no permission).

Writing goes through ``atomic_output``: the writer gets a temporary name beside the final one
(``OUT.partial``, or ``OUT.partial.png`` where the suffix picks the format) and the result is
renamed to ``OUT`` only when it is complete; on any error or Ctrl-C the temporary is removed,
so no half file ever stands under the final name and an overwritten output is replaced only
by a complete one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import EventfxError

PARTIAL = ".partial"


def _resolved(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(path: Path | str, *, inputs: Iterable[Path | str] = (), overwrite: bool = False,
                 what: str = "output", suffixes: Iterable[str] | None = None) -> Path:
    """Check one output path (see the module docstring); returns it as a ``Path``."""
    path = Path(path)
    if str(path) in ("", "."):
        raise EventfxError(f"{what}: empty path")
    out = _resolved(path)
    for inp in inputs:
        if inp is None:
            continue
        src = _resolved(inp)
        if _inside(out, src):
            kind = "is the input" if out == src else "lies inside the input"
            raise EventfxError(f"{what} {path} {kind} {inp}; refusing to write over what eventfx reads")
        if _inside(src, out):
            raise EventfxError(f"{what} {path} holds the input {inp}; refusing to write over what eventfx reads")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if path.suffix.lower() not in suffixes:
            raise EventfxError(f"{what} {path}: must end in {' or '.join(suffixes)}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise EventfxError(f"{what} {path} exists already; choose another name or pass --overwrite")
    for tmp in dict.fromkeys((partial_path(path), partial_path(path, keep_suffix=True))):
        if (tmp.exists() or tmp.is_symlink()) and not overwrite:
            raise EventfxError(f"{what} {path}: {tmp} exists (left by an interrupted run?); remove it, "
                               f"choose another name or pass --overwrite")
    if path.is_dir() and not path.is_symlink() and overwrite and any(path.iterdir()) \
            and not (path / "metadata.yaml").exists():
        raise EventfxError(f"{what} {path} is a folder that is not a bag; --overwrite replaces only "
                           f"files and bags")
    make_parent(path, what)
    return path


def make_parent(path: Path | str, what: str = "output") -> Path:
    """Create the parent folders of ``path``; one ``EventfxError`` if they cannot be made or written."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise EventfxError(f"{what} {path}: {_first_file(parent)} is a file, not a folder") from None
    except NotADirectoryError:
        raise EventfxError(f"{what} {path}: {_first_file(parent)} is a file, not a folder") from None
    except OSError as exc:
        raise EventfxError(f"{what} {path}: cannot create folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EventfxError(f"{what} {path}: folder {parent} is not writable (permission denied)")
    return parent


def _first_file(folder: Path) -> Path:
    for p in [*reversed(folder.parents), folder]:
        if p.exists() and not p.is_dir():
            return p
    return folder


def check_outputs(outputs: dict[str, Path | str | None], *, inputs: Iterable[Path | str] = (),
                  overwrite: bool = False, suffixes: dict[str, Iterable[str]] | None = None) -> dict[str, Path]:
    """Check several outputs of one command (``{"--scores": path, ...}``; None entries are skipped)."""
    inputs = [i for i in inputs if i is not None]
    suffixes = suffixes or {}
    seen: dict[Path, str] = {}
    out: dict[str, Path] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        p = check_output(path, inputs=inputs, overwrite=overwrite, what=what, suffixes=suffixes.get(what))
        r = _resolved(p)
        for other_r, other in seen.items():
            if _inside(r, other_r) or _inside(other_r, r):
                raise EventfxError(f"{what} {path} and {other} are the same place; give each output its own path")
        seen[r] = what
        out[what] = p
    return out


def partial_path(path: Path | str, keep_suffix: bool = False) -> Path:
    """The temporary name of ``path`` while it is written."""
    path = Path(path)
    if keep_suffix and path.suffix:
        return path.with_name(path.stem + PARTIAL + path.suffix)
    return path.with_name(path.name + PARTIAL)


def remove(path: Path) -> None:
    """Remove a file, link or folder if it is there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def finish(partial: Path, path: Path) -> None:
    """Move a complete ``partial`` to ``path`` (replacing what --overwrite allowed to replace)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(partial, path)


@contextlib.contextmanager
def atomic_output(path: Path | str, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield the temporary path to write; rename it to ``path`` when the block ends without error."""
    path = Path(path)
    tmp = partial_path(path, keep_suffix)
    remove(tmp)  # a leftover of an interrupted earlier run (check_output let it through: --overwrite)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    if not tmp.exists():
        raise EventfxError(f"{path}: the writer produced no output")
    finish(tmp, path)
