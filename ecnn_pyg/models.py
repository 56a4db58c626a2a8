"""The registry of model types: name -> class and config schema; building and rebuilding models.

A model type is a :class:`ModelType`: the model class (a
:class:`~ecnn_pyg.nn._configurable.ConfigurableModel` with ``DEFAULT_CONFIG``,
``from_config`` and ``config``), the keys of its config that may be ``null``,
and the dtype it trains in by default. Its config schema is *derived* from the
class's ``DEFAULT_CONFIG``: each key takes the type of its default value
(``int``, ``float``, ``bool``, ``str``, ``list``), the declared nullable keys
also accept ``null``, and a key whose default is ``None`` without a declared
type accepts any value (the model checks it). The defaults are thus written
once, in the model; a key added to ``DEFAULT_CONFIG`` is accepted here without
a change.

* ``"ecnn"``: :class:`ecnn_pyg.nn.ECNN` (trained in float32 by default);
* ``"ifnn"``: :class:`ecnn_pyg.baseline.IFNN`, the invariant-feature baseline
  (float64).

:func:`build_model` makes a new model from a (checked) config,
:func:`model_from_checkpoint` the model of a loaded checkpoint dict.
"""
from __future__ import annotations

import copy
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch

from .checkpoint import CheckpointError
from .config import ConfigError, load_config

__all__ = ["ModelType", "MODEL_TYPES", "schema_from_defaults", "model_schema",
           "check_model_config", "build_model", "model_from_checkpoint", "checkpoint_lattice"]

_NONE = type(None)


@dataclass(frozen=True, eq=False)
class ModelType:
    """One entry of the registry :data:`MODEL_TYPES`.

    Attributes:
        name: the type's name in configs and checkpoints (``model: ecnn``).
        target: ``"module:Class"`` of the model class, imported on first use.
        nullable: ``{key: type}`` of the config keys that may also be
            ``None`` (``type``, or a tuple of types, is their type otherwise;
            an ECNN's ``lattice`` is a built-in name or a lattice definition).
        default_dtype: ``"float32"`` or ``"float64"``, the training dtype
            when the training config leaves ``dtype`` unset.
        ranges: ``{key: (test, description)}``: the values a numeric key
            accepts (``None`` passes where the key is nullable); checked by
            :func:`check_model_config` before a model is built.
    """

    name: str
    target: str
    nullable: Mapping[str, type] = field(default_factory=dict)
    default_dtype: str = "float32"
    ranges: Mapping[str, Tuple[Callable[[Any], bool], str]] = field(default_factory=dict)

    @property
    def cls(self) -> type:
        """The model class (imported from :attr:`target`)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def defaults(self) -> Dict[str, Any]:
        """A copy of the class's ``DEFAULT_CONFIG``: every constructor argument and its default."""
        return copy.deepcopy(dict(self.cls.DEFAULT_CONFIG))

    def schema(self) -> Dict[str, Tuple[Any, Any]]:
        """The config schema ``{key: (types, default)}`` (see :func:`schema_from_defaults`).

        Returns:
            The schema derived from :attr:`defaults` and :attr:`nullable`.
        """
        return schema_from_defaults(self.defaults, self.nullable)


def _positive_ints(v) -> bool:
    return len(v) > 0 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                              for x in v)


_FINITE = (lambda v: True, "finite")
_COUNT = (lambda v: v >= 1, ">= 1 (or null: from the lattice)")

#: model type name -> :class:`ModelType`
MODEL_TYPES: Dict[str, ModelType] = {
    "ecnn": ModelType("ecnn", "ecnn_pyg.nn:ECNN",
                      nullable={"lattice": (str, dict), "num_bond_types": int, "num_shells": int,
                                "avg_num_neighbors": float},
                      default_dtype="float32",
                      ranges={"num_bond_types": _COUNT, "num_shells": _COUNT,
                              "channels": (lambda v: v >= 1, ">= 1"),
                              "lmax": (lambda v: v >= 1, ">= 1"),
                              "lmax_filter": (lambda v: v in (0, 1), "0 or 1"),
                              "num_blocks": (lambda v: v >= 1, ">= 1"),
                              "output_channels": (_positive_ints,
                                                  "a non-empty list of integers >= 1"),
                              "avg_num_neighbors": (lambda v: v > 0,
                                                    "> 0 and finite (or null)"),
                              "energy_scale": _FINITE, "energy_shift": _FINITE}),
    "ifnn": ModelType("ifnn", "ecnn_pyg.baseline:IFNN", default_dtype="float64",
                      ranges={"radius2": (lambda v: v > 0, "> 0 and finite"),
                              "pair_radius2": (lambda v: v > 0, "> 0 and finite"),
                              "hidden": (_positive_ints, "a non-empty list of integers >= 1"),
                              "energy_scale": _FINITE, "energy_shift": _FINITE}),
}


def _value_type(value: Any) -> Any:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, (list, tuple)):
        return (list, tuple)
    if isinstance(value, Mapping):
        return dict
    return type(value)


def schema_from_defaults(defaults: Mapping[str, Any], nullable: Optional[Mapping[str, type]] = None
                         ) -> Dict[str, Tuple[Any, Any]]:
    """A :func:`~ecnn_pyg.config.load_config` schema whose types are those of the defaults.

    Args:
        defaults: ``{key: default value}`` (a model's ``DEFAULT_CONFIG``).
        nullable: ``{key: type}`` of keys that accept ``None`` besides ``type``.

    Returns:
        ``{key: (types, default)}``: the default value's type (an ``int``
        default admits ``int``, a ``float`` default also ``int``, a list
        default lists and tuples), plus ``None`` for the nullable keys; a key
        whose default is ``None`` and that is not declared nullable accepts
        any value.

    Raises:
        ValueError: if ``nullable`` names a key that is not in ``defaults``.
    """
    nullable = dict(nullable or {})
    stray = sorted(set(nullable) - set(defaults))
    if stray:
        raise ValueError(f"nullable keys {stray} are not config keys ({sorted(defaults)})")
    schema = {}
    for key, value in defaults.items():
        if key in nullable:
            t = nullable[key]
            types = (*t, _NONE) if isinstance(t, tuple) else (t, _NONE)
        elif value is None:
            types = (object, bool, _NONE)           # undeclared: the model checks the value
        else:
            types = _value_type(value)
        schema[key] = (types, copy.deepcopy(value))
    return schema


def _model_type(name: str) -> ModelType:
    if name not in MODEL_TYPES:
        raise ConfigError(f"unknown model type {name!r}; available: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[name]


def model_schema(model_type: str) -> Dict[str, Tuple[Any, Any]]:
    """The config schema ``{key: (types, default)}`` of a model type.

    Args:
        model_type: a key of :data:`MODEL_TYPES` (``"ecnn"`` or ``"ifnn"``).

    Returns:
        The schema, derived from the model class's ``DEFAULT_CONFIG``.

    Raises:
        ConfigError: if the model type is unknown.
    """
    return _model_type(model_type).schema()


def check_model_config(model_type: str, config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The full, type-checked config of a model type (unknown keys/types refused).

    Args:
        model_type: a key of :data:`MODEL_TYPES` (``"ecnn"`` or ``"ifnn"``).
        config: constructor arguments; missing keys take the model's defaults.

    Returns:
        Every constructor argument of the model type, defaults filled in.

    Raises:
        ConfigError: if the model type is unknown, a key is unknown or of
            the wrong type (see :func:`model_schema`), or a number is out of
            its range (:attr:`ModelType.ranges`, e.g. ``channels >= 1``).
    """
    schema = model_schema(model_type)
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"model_config ({model_type}) must be a mapping of keys to values, "
                          f"got {type(config).__name__}")
    try:
        cfg = load_config(dict(config or {}), schema)
    except ConfigError as err:
        raise ConfigError(f"model_config ({model_type}): {err}") from None
    for key, (test, desc) in _model_type(model_type).ranges.items():
        value = cfg.get(key)
        if value is None:
            continue
        if (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise ConfigError(f"model_config ({model_type}): config key '{key}' must be "
                              f"{desc}, got {value!r}")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def build_model(model_type: str, config: Optional[Mapping[str, Any]] = None) -> torch.nn.Module:
    """A new model of type ``model_type`` (``"ecnn"`` or ``"ifnn"``) from its config.

    Args:
        model_type: a key of :data:`MODEL_TYPES`.
        config: constructor arguments (checked by :func:`check_model_config`).

    Returns:
        The new, untrained model.

    Raises:
        ConfigError: if the model type or the config is invalid.
        ValueError: if the model refuses the (well-typed) arguments.
    """
    cfg = check_model_config(model_type, config)
    return _model_type(model_type).cls.from_config(cfg)


def model_from_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the model of a loaded checkpoint dict (eval mode, its dtype).

    Args:
        ckpt: a checkpoint dict (from :func:`ecnn_pyg.checkpoint.load_checkpoint`).
        source: name of the checkpoint in error messages.

    Returns:
        The model with the checkpoint's weights, in eval mode and ``dtype``;
        ``model.trained_on`` holds the checkpoint's ``data`` entry (lattice,
        size, hoppings and ED parameters of the training data).

    Raises:
        CheckpointError: if the model type is unknown, the model config does
            not build, the dtype is unknown, or the weights do not fit the
            model.
    """
    if ckpt.get("model_type") not in MODEL_TYPES:
        raise CheckpointError(f"'{source}' holds a model of unknown type "
                              f"{ckpt.get('model_type')!r}; this version knows "
                              f"{sorted(MODEL_TYPES)}")
    try:
        model = build_model(ckpt["model_type"], ckpt.get("model_config"))
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"'{source}': its model config does not build: {err}") from None
    dtype_name = ckpt.get("dtype") or "float32"
    if dtype_name not in ("float32", "float64"):
        raise CheckpointError(f"'{source}': dtype must be 'float32' or 'float64', "
                              f"got {dtype_name!r}")
    model.to(getattr(torch, dtype_name))
    try:
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"'{source}': weights do not fit the model "
                              f"({str(err).splitlines()[0]})") from None
    model.eval()
    model.trained_on = dict(ckpt.get("data") or {})
    return model


def checkpoint_lattice(ckpt: Mapping[str, Any]):
    """The lattice a checkpoint's model works on, from the checkpoint alone (no file needed).

    Looked up in order: the model config's ``lattice`` (a built-in name or, for
    a lattice of one's own, its definition), the training data's lattice
    definition (``data.lattice_definition``), the training data's lattice name
    (built-in lattices; older checkpoints).

    Args:
        ckpt: a checkpoint dict (from :func:`ecnn_pyg.checkpoint.load_checkpoint`).

    Returns:
        The :class:`~ecnn_pyg.lattice.Lattice`, or ``None`` if the checkpoint
        records none that loads.
    """
    from .lattice import LatticeError, load_lattice
    data = ckpt.get("data") or {}
    for ref in ((ckpt.get("model_config") or {}).get("lattice"), data.get("lattice_definition"),
                data.get("lattice")):
        if ref is None:
            continue
        try:
            return load_lattice(ref)
        except (LatticeError, TypeError):
            continue
    return None
