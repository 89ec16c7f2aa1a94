"""The plan of one run's streaming: the streamer config, the transfer options and the consumer job.

Made by a DAG run's first task for every run it streams, checked before anything starts (the config by
the streamer's own model, the options by ``TransferOptions``, the consumer's resources by Psi-k's), and
handed to the mapped task group that streams the run (``flow.stream_run``) as its arguments.

* The streamer config is the template ``StreamSettings.streamer_config`` rendered (Jinja, undefined names
  are errors) with ``run_event`` and ``stream`` (the detectors chosen, serializer, compression, batch size).
* The transfer is requested by the ``lclstream`` connection's identity; the consumer job pulls it as
  another identity (by default the ``psik`` connection's, which the job runs as), so that identity is
  named in the transfer's ``readers``: it may then fetch its own data credentials, nobody else may.
* The consumer job's script is ``StreamSettings.consumer_command`` with its placeholders filled in;
  the transfer id and URL, known only once the transfer exists, reach it as the job's environment
  variables ``LCLSTREAM_TRANSFER_ID`` and ``LCLSTREAM_TRANSFER_URL``.

    plan = plan_run(event, settings, dags_folder, reader="hpc")
    plan.expand_kwargs()     # run_event, config, options, consumer_script, consumer_backend, ...
"""

from __future__ import annotations

import shlex
import string
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from airflow_provider_lclstream.run_dags.settings import StreamSettings
from airflow_provider_lclstream.run_event_context import event_payload
from elog.events import RunEvent
from lclstream_api.models import TransferOptions
from streamer.config import ConfigError, load_config

PLACEHOLDERS = ("transfer_id", "url", "server", "out_dir", "experiment", "run", "instrument", "run_dir", "key")
TRANSFER_ID_ENV = "LCLSTREAM_TRANSFER_ID"
TRANSFER_URL_ENV = "LCLSTREAM_TRANSFER_URL"


class PlanError(ValueError):
    """A run cannot be streamed as configured; the message names the run and the setting."""


class RunPlan(BaseModel):
    """Everything the streaming of one run needs before its transfer exists."""

    model_config = ConfigDict(extra="forbid")

    run_event: dict[str, Any]
    config: dict[str, Any]
    options: dict[str, Any]
    consumer_script: str
    consumer_backend: str
    consumer_resources: dict[str, Any]
    out_dir: str

    def expand_kwargs(self) -> dict[str, Any]:
        """The arguments of the task group that streams the run (``stream_run.expand_kwargs``)."""
        return self.model_dump(mode="json")


def with_run_dir(event: RunEvent, settings: StreamSettings) -> RunEvent:
    """The event with its run directory: its own, else ``settings.run_dir`` filled in."""
    if event.run_dir:
        return event
    if not settings.run_dir:
        raise PlanError(f"run {event.key}: its run event names no run directory, and the Variable "
                        "lclstream_run_dir (a template like /data/{instrument}/{experiment}/r{run:04d}) is not set")
    return event.model_copy(update={"run_dir": fill(settings.run_dir, event, "lclstream_run_dir")})


def fill(template: str, event: RunEvent, what: str, **values: Any) -> str:
    """``template`` with ``{experiment}``, ``{run}``, ``{instrument}``, ``{key}`` (and ``values``) filled in."""
    known = {"experiment": event.experiment, "run": event.run, "instrument": event.instrument, "key": event.key,
             "run_dir": event.run_dir or "", **values}
    try:
        return template.format_map(known)
    except (KeyError, IndexError) as exc:
        raise PlanError(f"{what}: unknown placeholder {exc} in {template!r}; known: "
                        f"{', '.join('{' + k + '}' for k in known)}") from None
    except ValueError as exc:
        raise PlanError(f"{what}: {template!r} is not a valid template: {exc}") from None


def pick_detectors(wanted: list[str], available: list[str], key: str, strict: bool) -> list[str]:
    """The detectors to stream: ``wanted`` (or all ``available`` when empty).

    ``strict`` (a person chose them for this run): each must be one of the run's. Otherwise (a Variable
    for every run) those the run has; none of them is an error.
    """
    if not wanted:
        if not available:
            raise PlanError(f"run {key}: its run event names no detectors; set the Variable lclstream_detectors")
        return list(available)
    if not available:
        return list(wanted)
    missing = [d for d in wanted if d not in available]
    if strict and missing:
        raise PlanError(f"detectors: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not recorded in "
                        f"run {key} (it has {', '.join(available)})")
    chosen = [d for d in wanted if d in available]
    if not chosen:
        raise PlanError(f"run {key}: none of the detectors {', '.join(wanted)} (Variable lclstream_detectors) "
                        f"is recorded in this run (it has {', '.join(available)})")
    return chosen


def template_path(settings: StreamSettings, dags_folder: Path) -> Path:
    path = Path(settings.streamer_config).expanduser()
    return path if path.is_absolute() else dags_folder / path


def render_config(template: Path, event: RunEvent, settings: StreamSettings, detectors: list[str]) -> dict[str, Any]:
    """The streamer config of the run: the template rendered, read as YAML, checked by the streamer's model."""
    try:
        text = template.read_text()
    except OSError as exc:
        raise PlanError(f"streamer config template {template} (Variable lclstream_streamer_config): "
                        f"{exc.strerror or exc}") from None
    stream = {"detectors": detectors, "serializer": settings.serializer, "compression": settings.compression,
              "batch_size": settings.batch_size, "idle_timeout": settings.live_idle_timeout}
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    try:
        rendered = env.from_string(text).render(run_event=event_payload(event),
                                                stream=stream)
        data = yaml.safe_load(rendered)
    except (TemplateError, yaml.YAMLError) as exc:
        raise PlanError(f"streamer config template {template}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise PlanError(f"streamer config template {template}: renders to {type(data).__name__}, not a config")
    try:
        load_config(data)
    except ConfigError as exc:
        problems = "; ".join(f"{path or '<top level>'}: {message}" for path, message in exc.errors)
        raise PlanError(f"the streamer config of run {event.key} (from {template}) is not valid: {problems}") from None
    return data


def consumer_script(command: str, event: RunEvent, settings: StreamSettings, out_dir: str) -> str:
    """The consumer job's bash script: its environment exported, then the command with its placeholders
    filled in (every value shell-quoted; the transfer id and URL as environment variables)."""
    for _text, name, _spec, _conv in string.Formatter().parse(command):
        if name is not None and name not in PLACEHOLDERS:
            raise PlanError(f"consumer command: unknown placeholder {{{name}}} in {command!r}; known: "
                            f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    values = {"transfer_id": f'"${TRANSFER_ID_ENV}"', "url": f'"${TRANSFER_URL_ENV}"',
              "server": shlex.quote(settings.consumer_server), "out_dir": shlex.quote(out_dir),
              "experiment": shlex.quote(event.experiment), "run": str(event.run),
              "instrument": shlex.quote(event.instrument), "run_dir": shlex.quote(event.run_dir or ""),
              "key": shlex.quote(event.key)}
    try:
        line = command.format_map(values)
    except (ValueError, IndexError) as exc:
        raise PlanError(f"consumer command: {command!r} is not a valid template: {exc}") from None
    exports = [f"export {name}={shlex.quote(value)}" for name, value in settings.consumer_environment.items()]
    return "\n".join([f"# run {event.key}: consumer of transfer ${TRANSFER_ID_ENV}", *exports, line, ""])


def transfer_options(settings: StreamSettings, owner: str | None, reader: str | None) -> dict[str, Any]:
    readers = [reader] if reader and reader != owner else []
    data = {**settings.transfer_options, "ranks": settings.ranks, "readers": readers}
    return TransferOptions.model_validate(data).model_dump(mode="json", exclude_unset=True)


def plan_run(event: RunEvent, settings: StreamSettings, dags_folder: Path, *, owner: str | None = None,
             reader: str | None = None, strict: bool = False) -> RunPlan:
    """The plan of one run; PlanError when it cannot be streamed as configured (nothing has started)."""
    event = with_run_dir(event, settings)
    detectors = pick_detectors(settings.detectors, event.detectors, event.key, strict)
    config = render_config(template_path(settings, dags_folder), event, settings, detectors)
    out_dir = fill(settings.consumer_out_dir, event, "lclstream_consumer_out_dir")
    return RunPlan(run_event=event_payload(event), config=config,
                   options=transfer_options(settings, owner, reader),
                   consumer_script=consumer_script(settings.consumer_command, event, settings, out_dir),
                   consumer_backend=settings.consumer_backend, consumer_resources=dict(settings.consumer_resources),
                   out_dir=out_dir)
