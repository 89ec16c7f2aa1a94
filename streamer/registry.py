"""Registry of component types: built-ins plus third-party plugins from entry points.

A plugin package exposes, in its own ``pyproject.toml``::

    [project.entry-points."lclstream.event_sources"]
    MyEventSource = "my_pkg.sources:COMPONENT"

where ``COMPONENT`` is a ``Component(config_model, implementation)``. Groups: ``lclstream.event_sources``,
``lclstream.data_sources``, ``lclstream.processing_steps``, ``lclstream.serializers``,
``lclstream.data_handlers``. The config model's ``type`` literal is the name used in YAML files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal, get_args

from streamer.base import ComponentConfig

log = logging.getLogger(__name__)

Kind = Literal["event_sources", "data_sources", "processing_steps", "serializers", "data_handlers"]
KINDS: tuple[str, ...] = get_args(Kind)


@dataclass(frozen=True)
class Component:
    config_model: type[ComponentConfig]
    implementation: type | None  # None for data sources that only describe what to extract

    @property
    def type_name(self) -> str:
        literal = self.config_model.model_fields["type"].annotation
        (name,) = get_args(literal)
        return name


_REGISTRY: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
_PLUGINS_LOADED = False


def register(kind: Kind, component: Component) -> Component:
    _REGISTRY[kind][component.type_name] = component
    return component


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for kind in KINDS:
        for ep in entry_points(group=f"lclstream.{kind}"):
            try:
                component = ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                log.warning("plugin %s in lclstream.%s failed to load: %s", ep.name, kind, exc)
                continue
            if not isinstance(component, Component):
                log.warning("plugin %s in lclstream.%s is not a streamer.registry.Component", ep.name, kind)
                continue
            register(kind, component)  # type: ignore[arg-type]


def components(kind: Kind) -> dict[str, Component]:
    """All registered components of a kind, built-ins first imported, then plugins."""
    import streamer.builtins  # noqa: F401  (registers the built-in components)

    _load_plugins()
    return dict(_REGISTRY[kind])


def lookup(kind: Kind, type_name: str) -> Component:
    known = components(kind)
    if type_name not in known:
        raise KeyError(f"unknown {kind[:-1].replace('_', ' ')} type {type_name!r}; known: {', '.join(sorted(known))}")
    return known[type_name]
