"""Commented YAML configs checked against a schema, overridable from the command line.

A schema maps each key to ``(types, default)``; ``REQUIRED`` marks keys without
a default. Unknown keys and wrong types are refused with a message naming the
expected keys/types (as MACE's ``arg_parser``: YAML keys, flags override).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import yaml

__all__ = ["ConfigError", "REQUIRED", "load_config", "parse_overrides"]

REQUIRED = object()


class ConfigError(ValueError):
    """A config file that does not match its schema."""


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _check_type(key: str, value: Any, types) -> Any:
    types = types if isinstance(types, tuple) else (types,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if bool not in types and isinstance(value, bool):
        raise ConfigError(f"config key '{key}' must be {_type_name(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"config key '{key}' must be {_type_name(types)}, "
                          f"got {type(value).__name__} {value!r}")
    return value


def parse_overrides(items: Optional[Iterable[str]]) -> Dict[str, Any]:
    """``["J=7", "size=[30, 30]"]`` -> ``{"J": 7, "size": [30, 30]}`` (values parsed as YAML).

    Args:
        items: ``key=value`` strings (e.g. from ``--set``); ``None`` for none.

    Returns:
        ``{key: value}`` with each value parsed by :func:`yaml.safe_load`.

    Raises:
        ConfigError: if an item has no ``=``.
    """
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def load_config(source: Union[str, Path, Mapping, None], schema: Mapping[str, Tuple],
                overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Read a config, apply overrides and check every key against a schema.

    Args:
        source: a YAML file path, a mapping, or ``None`` for the defaults.
        schema: ``{key: (types, default)}``; ``default`` is :data:`REQUIRED` for
            keys without a default. An ``int`` is accepted (as ``float``) where
            ``float`` is allowed; ``bool`` only where ``bool`` is listed;
            ``null`` only where ``type(None)`` is listed.
        overrides: ``{key: value}`` applied on top of ``source``.

    Returns:
        ``{key: value}`` for every key of ``schema``, defaults filled in.

    Raises:
        ConfigError: if the file does not exist, is not valid YAML or not a
            mapping, a key is unknown (with a close-match hint), a value has
            the wrong type, or a required key is missing.
    """
    if source is None:
        raw: Dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from err
        if not isinstance(raw, Mapping):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys to values")
    raw.update(overrides or {})
    unknown = [k for k in raw if k not in schema]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(schema), n=1)
            hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ConfigError(f"unknown config key(s) {', '.join(hints)}; "
                          f"valid keys: {', '.join(schema)}")
    cfg = {}
    for key, (types, default) in schema.items():
        if key in raw:
            cfg[key] = None if raw[key] is None and type(None) in _tuple(types) \
                else _check_type(key, raw[key], types)
        elif default is REQUIRED:
            raise ConfigError(f"config key '{key}' ({_type_name(types)}) is required")
        else:
            cfg[key] = default
    return cfg


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)
