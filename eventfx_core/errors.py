"""The one error type users see: a single line that names the file, message or byte offset."""


class EventfxError(Exception):
    """A user-facing error. ``str(err)`` is one line; the CLI prints it as ``eventfx: error: ...``."""


class DecodeError(EventfxError):
    """A payload could not be decoded (truncated, garbage, unknown encoding)."""


class FormatError(EventfxError):
    """A file is not in the format its name or content claims, or is corrupt."""


class ConfigError(EventfxError):
    """A config, parameter or checkpoint is invalid (unknown key, wrong type, mismatch)."""


def warn(text: str) -> None:
    """One ``eventfx: warning: ...`` line on stderr, on its own line even under a progress bar."""
    import sys

    line = f"eventfx: warning: {text}"
    if "tqdm" in sys.modules:
        from tqdm import tqdm
        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)
