"""The streamer's config: one pydantic model, built from the component registry (plugins included).

``StreamerConfig`` is the root model (a plain pydantic model: the transfer API takes it as a request body
and replaces ``data_handlers``); ``load_config`` reads YAML or JSON and raises ``ConfigError`` whose
``errors`` are ``(dotted_path, message)`` pairs such as
``("data_serializer.compression", "'lz5' is not one of 'none', 'gzip', ...")``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from streamer.base import ComponentConfig
from streamer.registry import Kind, components

SECTION_KINDS: dict[str, Kind] = {
    "event_source": "event_sources",
    "data_sources": "data_sources",
    "processing_pipeline": "processing_steps",
    "data_serializer": "serializers",
    "data_handlers": "data_handlers",
}
KIND_LABELS: dict[str, str] = {
    "event_sources": "event source",
    "data_sources": "data source",
    "processing_steps": "processing step",
    "serializers": "serializer",
    "data_handlers": "data handler",
}


class ConfigError(ValueError):
    """An invalid config: ``errors`` lists ``(dotted_path, message)``; ``lines`` maps paths to YAML lines."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "config",
                 lines: Mapping[str, int] | None = None) -> None:
        self.errors = errors
        self.source = source
        self.lines = dict(lines or {})
        super().__init__(self.describe())

    def describe(self) -> str:
        if len(self.errors) == 1 and not self.errors[0][0]:
            return self.errors[0][1]
        head = f"{self.source} is not a valid streamer config ({len(self.errors)} error" \
               f"{'s' if len(self.errors) != 1 else ''}):"
        body = []
        for path, message in self.errors:
            line = f" (line {self.lines[path]})" if path in self.lines else ""
            body.append(f"  {path or '<top level>'}: {message}{line}")
        return "\n".join([head, *body])


class SectionErrors(ValueError):
    """Errors found by a model validator, each with its own path (expanded by ``load_config``)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


def known_types(kind: Kind) -> list[str]:
    return sorted(components(kind))


def _component_union(kind: Kind) -> Any:
    models = tuple(component.config_model for component in components(kind).values())
    if not models:  # nothing registered yet: every value is rejected with a clear message
        def _none_registered(value: Any) -> Any:
            raise ValueError(f"no {KIND_LABELS[kind]} types are registered")
        return Annotated[Any, BeforeValidator(_none_registered)]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 (a runtime tuple of models)


def _one_or_many(value: Any) -> Any:
    """A single mapping is a one-element list; null is an empty list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return value


EventSourceConfig = _component_union("event_sources")
DataSourceConfig = _component_union("data_sources")
ProcessingStepConfig = _component_union("processing_steps")
SerializerConfig = _component_union("serializers")
DataHandlerConfig = _component_union("data_handlers")


class StreamerConfig(BaseModel):
    """A whole streamer run: where events come from, what is extracted, how it is reduced, packed and sent."""

    model_config = ConfigDict(extra="forbid")

    source_identifier: str = Field(min_length=1, description="names the run, e.g. exp=mfxp1001121:run=7")
    event_source: EventSourceConfig
    data_sources: dict[str, DataSourceConfig] = Field(min_length=1, description="name -> what to extract")
    processing_pipeline: Annotated[list[ProcessingStepConfig], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, description="steps applied in this order")
    data_serializer: SerializerConfig
    data_handlers: Annotated[list[DataHandlerConfig], BeforeValidator(_one_or_many)] = Field(
        min_length=1, description="every handler receives the same bytes")

    @model_validator(mode="after")
    def _sections_fit_together(self) -> StreamerConfig:
        errors = self._data_source_errors() + self._data_name_errors()
        if errors:
            raise SectionErrors(errors)
        return self

    def _data_source_errors(self) -> list[tuple[str, str]]:
        supported = getattr(type(self.event_source), "supported_data_sources", None)
        if supported is None:
            return []
        return [
            (f"data_sources.{name}.type",
             f"{spec.type} cannot be read by {self.event_source.type}; "  # type: ignore[attr-defined]
             f"it reads: {', '.join(sorted(supported))}")
            for name, spec in self.data_sources.items()
            if spec.type not in supported  # type: ignore[attr-defined]
        ]

    def _data_name_errors(self) -> list[tuple[str, str]]:
        """Names a step or the serializer uses must exist at that point of the chain.

        Steps tell what they produce with ``output_names(names)``; after a step that does not (a plugin),
        names can no longer be checked.
        """
        errors: list[tuple[str, str]] = []
        names: set[str] | None = set(self.data_sources)
        sections = [(f"processing_pipeline[{i}]", step) for i, step in enumerate(self.processing_pipeline)]
        for path, section in [*sections, ("data_serializer", self.data_serializer)]:
            if names is None:
                break
            for relative, name in referenced_names(section):
                if name not in names:
                    errors.append((f"{path}.{relative}", f"no data named {name!r} here; available: "
                                                         f"{', '.join(sorted(names))}"))
            output_names = getattr(section, "output_names", None)
            names = output_names(set(names)) if callable(output_names) else None
        return errors


def referenced_names(section: Any) -> list[tuple[str, str]]:
    """(path relative to the section, data name) of every data name a step or serializer config uses.

    A config can say so itself with ``referenced_names()``; otherwise the keys of a ``fields`` mapping are used.
    """
    method = getattr(section, "referenced_names", None)
    if callable(method):
        return list(method())
    fields = getattr(section, "fields", None)
    if isinstance(fields, Mapping):
        return [(f"fields.{name}", name) for name in fields]
    return []


def config_schema() -> dict[str, Any]:
    return StreamerConfig.model_json_schema()


# ---------------------------------------------------------------------------------------------------
# loading and error reporting


def _read(source: str | Path) -> tuple[Any, str]:
    path = Path(source)
    if not path.is_file():
        raise ConfigError([("", f"config file {path} does not exist")], source=str(path))
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError([("", f"cannot parse config file {path}: {' '.join(str(exc).split())}")],
                          source=str(path)) from None
    return data, text


def load_config(source: str | Path | Mapping[str, Any]) -> StreamerConfig:
    """Validate a config given as a YAML/JSON file path or as a mapping; raise ConfigError listing every error."""
    text = None
    if isinstance(source, Mapping):
        data, name = source, "config"
    else:
        data, text = _read(source)
        name = str(source)
    if not isinstance(data, Mapping):
        raise ConfigError([("", f"{name}: a config must be a mapping of sections, got {type(data).__name__}")],
                          source=name)
    try:
        return StreamerConfig.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc, data)
        lines = yaml_lines(text, errors) if text is not None else {}
        raise ConfigError(errors, source=name, lines=lines) from None


def validation_errors(exc: ValidationError, data: Any) -> list[tuple[str, str]]:
    """Turn pydantic errors into (dotted path in the user's file, clear message) pairs."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = _user_loc(err["loc"], data)
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), SectionErrors):
            out.extend(ctx["error"].errors)
            continue
        if err["type"] == "union_tag_invalid":
            loc = [*loc, "type"]
        out.append((format_path(loc), _message(err, loc, data)))
    return out


def _user_loc(loc: tuple[Any, ...], data: Any) -> list[Any]:
    """Drop the discriminator tags pydantic inserts into locations (they are not keys of the user's file)."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping) and part not in node and node.get("type") == part:
            continue
        if isinstance(node, Mapping) and part == 0 and 0 not in node:
            continue  # a single mapping given where a list is expected
        out.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return out


def format_path(loc: list[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _section_kind(loc: list[Any]) -> Kind | None:
    return SECTION_KINDS.get(loc[0]) if loc and isinstance(loc[0], str) else None


def _message(err: Any, loc: list[Any], data: Any) -> str:
    kind = _section_kind(loc)
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_invalid" and kind:
        return (f"unknown {KIND_LABELS[kind]} type {ctx.get('tag')!r}; known types: "
                f"{', '.join(known_types(kind))}")
    if err["type"] == "union_tag_not_found" and kind:
        return f"missing 'type'; known {KIND_LABELS[kind]} types: {', '.join(known_types(kind))}"
    if err["type"] == "literal_error":
        return f"{err['input']!r} is not one of {ctx.get('expected')}"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data)
        return f"unknown key {loc[-1]!r}" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    if err["type"] == "missing":
        return "required key is missing"
    value = err.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{err['msg']}, got {value!r}"
    return err["msg"]


def _allowed_keys(loc: list[Any], data: Any) -> list[str]:
    """The keys the model at ``loc`` accepts (best effort; [] when it cannot be told)."""
    model: Any = StreamerConfig
    node = data
    for part in loc:
        node = node.get(part) if isinstance(node, Mapping) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
        model = _field_model(model, part, node)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _field_model(model: Any, part: Any, node: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return _resolve(field.annotation, node) if field is not None else None
    origin = get_origin(model)
    if origin in (list, dict):
        return _resolve(get_args(model)[-1], node)
    return None


def _resolve(annotation: Any, node: Any) -> Any:
    """Unwrap Annotated; pick the union member whose ``type`` matches the user's node."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Union:
        for member in get_args(annotation):
            if isinstance(member, type) and issubclass(member, ComponentConfig) and isinstance(node, Mapping):
                field = member.model_fields.get("type")
                if field is not None and node.get("type") in get_args(field.annotation):
                    return member
        return None
    return annotation


def yaml_lines(text: str, errors: list[tuple[str, str]]) -> dict[str, int]:
    """Line numbers (1-based) of each error's path in the YAML text, where the path exists."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    for path, _message_text in errors:
        line = _node_line(root, _split_path(path))
        if line is not None:
            lines[path] = line
    return lines


def _split_path(path: str) -> list[Any]:
    parts: list[Any] = []
    for dotted in path.replace("[", ".[").split("."):
        if not dotted:
            continue
        parts.append(int(dotted[1:-1]) if dotted.startswith("[") else dotted)
    return parts


def _node_line(node: Any, parts: list[Any]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def describe(config: StreamerConfig) -> str:
    """One line saying what a valid config does."""
    steps = " -> ".join(step.type for step in config.processing_pipeline) or "no processing"  # type: ignore
    handlers = ", ".join(h.type for h in config.data_handlers)  # type: ignore[attr-defined]
    return (f"{config.event_source.type} ({', '.join(config.data_sources)}) -> {steps} -> "  # type: ignore
            f"{config.data_serializer.type} -> {handlers}")  # type: ignore[attr-defined]
