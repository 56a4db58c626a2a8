"""Commented YAML configs checked against a schema, overridable from the command line.

A schema maps each key to ``(types, default)``; ``REQUIRED`` marks keys without
a default. Unknown keys and wrong types are refused with a message naming the
expected keys/types (as MACE's ``arg_parser``: YAML keys, flags override).

A config file may start from others with the ``extends:`` key, so that settings
shared by several configs are written once::

    # stage_2.yaml
    extends: common.yaml          # or a list: [electrons.yaml, training.yaml]
    lr: 0.0005                    # keys of this file override those of common.yaml
    model_config: {channels: 16}  # nested mappings merge key by key

Paths in ``extends`` are relative to the file that names them; a list is merged
in order (later files override earlier ones), then the including file on top.
Mappings merge recursively, every other value (lists included) is replaced
whole, so a file cannot remove a key it inherits: keep keys that differ in kind
between configs (such as ``splits``) out of shared files. The ``extends`` key
itself never reaches the schema. Other paths inside a config (data, outputs,
checkpoints) stay relative to the working directory, as before.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import yaml

__all__ = ["ConfigError", "REQUIRED", "load_config", "parse_overrides", "read_config_file"]

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


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` with ``top`` on top: mappings merged recursively, other values replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def _extends_list(value: Any, path: Path) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"config file '{path}': 'extends' must be a file path or a non-empty "
                      f"list of file paths, got {value!r}")


def _read(path: Path, chain: Tuple[Path, ...], named_by: Optional[Path]) -> Dict[str, Any]:
    if not path.is_file():
        where = f" (named in 'extends' of '{named_by}')" if named_by is not None else ""
        raise ConfigError(f"config file '{path}'{where} does not exist")
    key = path.resolve()
    if key in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(key):], key))
        raise ConfigError(f"config files extend each other in a cycle: {cycle}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from err
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys to values")
    raw = dict(raw)
    if "extends" not in raw:
        return raw
    merged: Dict[str, Any] = {}
    for parent in _extends_list(raw.pop("extends"), path):
        merged = _merge(merged, _read(path.parent / parent, (*chain, key), path))
    return _merge(merged, raw)


def read_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """The keys of a YAML config file with its ``extends:`` chain resolved, unchecked.

    Args:
        path: the config file.

    Returns:
        ``{key: value}`` of the file merged over the files it extends (recursively);
        no ``extends`` key is left.

    Raises:
        ConfigError: if a file does not exist, is not valid YAML or not a mapping,
            ``extends`` is not a path or list of paths, or the files extend each
            other in a cycle.
    """
    return _read(Path(path), (), None)


def load_config(source: Union[str, Path, Mapping, None], schema: Mapping[str, Tuple],
                overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Read a config, apply overrides and check every key against a schema.

    Args:
        source: a YAML file path (its ``extends:`` chain resolved, see
            :func:`read_config_file`), a mapping, or ``None`` for the defaults.
            A mapping's ``extends`` paths are relative to the working directory.
        schema: ``{key: (types, default)}``; ``default`` is :data:`REQUIRED` for
            keys without a default. An ``int`` is accepted (as ``float``) where
            ``float`` is allowed; ``bool`` only where ``bool`` is listed;
            ``null`` only where ``type(None)`` is listed.
        overrides: ``{key: value}`` applied on top of ``source``.

    Returns:
        ``{key: value}`` for every key of ``schema``, defaults filled in.

    Raises:
        ConfigError: if the file (or one it extends) does not exist, is not
            valid YAML or not a mapping, files extend each other in a cycle, a key
            is unknown (with a close-match hint), a value has
            the wrong type, or a required key is missing.
    """
    if source is None:
        raw: Dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = dict(source)
        if "extends" in raw:
            here = Path("<mapping>")
            merged: Dict[str, Any] = {}
            for parent in _extends_list(raw.pop("extends"), here):
                merged = _merge(merged, _read(Path(parent), (), here))
            raw = _merge(merged, raw)
    else:
        raw = read_config_file(source)
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
