"""Models built from a config dict (constructor keyword arguments with defaults)."""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional


class ConfigurableModel:
    """Mixin: ``config`` returns the constructor arguments, ``from_config`` inverts it.

    Subclasses define ``DEFAULT_CONFIG`` (every constructor argument with its
    default) and store their arguments in ``self._config``.
    """

    DEFAULT_CONFIG: Mapping[str, Any] = {}

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor arguments (a YAML-able dict; ``type(m).from_config(m.config)``)."""
        return copy.deepcopy(self._config)

    @classmethod
    def from_config(cls, config: Optional[Mapping[str, Any]] = None, **overrides):
        """Build from a config dict; missing keys take ``DEFAULT_CONFIG``, unknown keys are refused.

        Args:
            config: constructor arguments (e.g. a model's :attr:`config`).
            **overrides: constructor arguments that replace those of ``config``.

        Returns:
            The model.

        Raises:
            ValueError: if a key is not in ``DEFAULT_CONFIG``.
        """
        given = dict(config or {})
        given.update(overrides)
        unknown = set(given) - set(cls.DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} config keys {sorted(unknown)}; "
                             f"known keys: {sorted(cls.DEFAULT_CONFIG)}")
        return cls(**{**cls.DEFAULT_CONFIG, **given})
