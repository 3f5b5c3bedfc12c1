"""Small dataclass configs: build from a dict, reject unknown keys, check types, one-line errors."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} is not {hint}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        out = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[C], data: dict | None, where: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``: unknown keys and wrong types raise ``ConfigError``.

    Nested dataclass fields are built recursively. Missing keys keep their defaults.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    renamed = getattr(cls, "RENAMED", {})  # old key -> what changed (a clear error for old configs)
    for key in unknown:
        if key in renamed:
            raise ConfigError(f"{where}.{key}: {renamed[key]}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"known: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = _check_type(value, hint, f"{where}.{name}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    check = getattr(obj, "check", None)
    if callable(check):
        check(where)  # a dataclass may validate ranges: raise ConfigError with the reason
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with a one-line error for a missing or malformed file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def ros_parameters(data: dict, path: str | Path = "config") -> dict:
    """The ``ros__parameters`` mapping of a ROS 2 params file (``/**:`` or a node name), or
    ``data`` itself when it is a plain mapping. The node and the CLI read the same file."""
    for key, value in data.items():
        if isinstance(value, dict) and "ros__parameters" in value:
            params = value["ros__parameters"]
            if not isinstance(params, dict):
                raise ConfigError(f"{path}: {key}.ros__parameters is not a mapping")
            return params
    return data


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # the shipped default weights


def resolve_weights(value: str, base_dir: str | Path | None, default_name: str) -> Path:
    """A stage's ``checkpoint`` setting as a path: ``default`` -> the shipped
    ``eventfx_core/weights/<default_name>``; a relative path -> against ``base_dir`` (the
    config file's folder) when given. Existence is checked by the loader."""
    if value == "default":
        return WEIGHTS_DIR / default_name
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path
