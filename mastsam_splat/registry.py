"""Backends chosen by name: one registry shape for segmenters and matchers.

A registry maps each backend name to its config dataclass; the config's ``setup()`` builds the
backend. Adding a backend is one entry in its package's registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Optional

from mastsam_splat.errors import InputError


def build_backend(kind: str, registry: dict[str, type], name: str, config: Optional[Any] = None) -> Any:
    """Build the ``kind`` backend registered as ``name`` from its config, a mapping of its fields, or defaults.

    Raises:
        InputError: unknown name, or a mapping with fields the backend's config does not have.
        TypeError: a config of another backend.
    """
    config_class = registry.get(name)
    if config_class is None:
        raise InputError(f"unknown {kind} {name!r}; choose one of: {', '.join(registry)}")
    if config is None:
        config = config_class()
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)} for {kind} {name!r}; known: {', '.join(sorted(known))}"
            )
        config = config_class(**config)
    elif not isinstance(config, config_class):
        raise TypeError(f"{kind} {name!r} takes a {config_class.__name__}, got {type(config).__name__}")
    return config.setup()
