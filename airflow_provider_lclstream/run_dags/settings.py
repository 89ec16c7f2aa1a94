"""The run DAGs' configuration: Airflow Variables named ``lclstream_<field>``, never constants in DAG files.

Two groups, read at different times:

* :class:`DagWiring`, read when a DAG file is parsed: the connection ids (operators take them as
  arguments) and which runs fire the DAGs (the ``RunEventTrigger``'s filter). A change takes effect at
  the next parse (``[dag_processor] refresh_interval``).
* :class:`StreamSettings`, read by each DAG run's first task: how a run is streamed and consumed.

Every field is one Variable (``airflow variables set lclstream_ranks 2``, or ``AIRFLOW_VAR_LCLSTREAM_RANKS``);
text fields take the Variable's text, the others its JSON (``lclstream_detectors`` = ``["jungfrau4M"]``). A
Variable that is not set leaves the default. A bad value raises :class:`SettingsError` naming the Variable.

    wiring = read_settings(DagWiring)                     # in a DAG file
    settings = read_settings(StreamSettings)              # in a task
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from elog.events import NAME_PATTERN
from lclstream_api.models import TransferOptions
from psik.models import NAME_PATTERN as PSIK_NAME
from psik.models import Resources
from streamer.serializers.hdf5 import Compression

PREFIX = "lclstream_"
DEFAULT_COMMAND = "lclstream pull {transfer_id} --server {server} --out {out_dir} --summary-json -"
S = TypeVar("S", bound=BaseModel)


class SettingsError(ValueError):
    """A Variable holds a value the DAGs cannot use; the message names the Variable and says why."""


CONN_ID = r"^[A-Za-z0-9_.-]{1,250}$"


class DagWiring(BaseModel):
    """Read when the DAG files are parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka_conn_id: str = Field("lclstream_kafka_default", pattern=CONN_ID,
                               description="the lclstream_kafka connection of the run events (its topic and "
                                           "consumer group are in the connection)")
    lclstream_conn_id: str = Field("lclstream_default", pattern=CONN_ID,
                                   description="the lclstream connection: LCLStream-API, and the identity that "
                                               "requests (owns) the transfers")
    psik_conn_id: str = Field("psik_default", pattern=CONN_ID,
                              description="the psik connection: Psik-API at the HPC side, and the identity the "
                                          "consumer jobs run as")
    elog_conn_id: str = Field("elog_default", pattern=CONN_ID,
                              description="the elog connection: where runs are read and annotated")
    instrument: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$",
                                   description="only runs of this instrument fire the DAGs (default: all)")
    experiment: str | None = Field(None, description="only experiments matching this pattern, e.g. mfx* "
                                                     "(default: all)")


class StreamSettings(BaseModel):
    """Read by each DAG run's first task; the manual DAG's form overrides some of them for its run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    streamer_config: str = Field("lclstream_configs/live_run.yaml", min_length=1,
                                 description="the streamer config template (Jinja, rendered with run_event and "
                                             "stream); a path on the workers, relative ones from the DAGs folder")
    run_dir: str | None = Field(None, description="for run events that name no run directory: a template such as "
                                                  "/data/{instrument}/{experiment}/r{run:04d}")
    detectors: list[str] = Field(default_factory=list, description="detectors to stream (default: the run's)")
    serializer: Literal["HDF5Serializer", "MsgpackSerializer"] = Field(
        "HDF5Serializer", description="HDF5Serializer (an HDF5 file image per batch) or MsgpackSerializer "
                                      "(CrystFEL's msgpack layout)")
    compression: Compression = Field("bitshuffle_lz4", description="HDF5 compression of the detector data")
    batch_size: int = Field(4, ge=1, le=100_000, description="events per message")
    ranks: int = Field(1, ge=1, le=1024, description="MPI ranks of the producers")
    live_idle_timeout: float = Field(60.0, gt=0, le=7 * 86400,
                                     description="seconds an open run may write no event before its stream fails")
    transfer_options: dict[str, Any] = Field(
        default_factory=dict, description="more transfer options (backend, idle_timeout, total_timeout, max_bytes, "
                                          "tls); ranks and readers come from the fields above")
    consumer_command: str = Field(DEFAULT_COMMAND, min_length=1,
                                  description="the consumer job's command; placeholders {transfer_id}, {url}, "
                                              "{server}, {out_dir}, {experiment}, {run}, {instrument}, {run_dir}, "
                                              "{key}")
    consumer_server: str = Field("lclstream", min_length=1,
                                 description="LCLStream-API as the consumer's identity knows it (certified alias "
                                             "or https URL)")
    consumer_out_dir: str = Field("lclstream-data/{experiment}/r{run:04d}", min_length=1,
                                  description="where the consumer writes the data (relative: in the job's folder)")
    consumer_identity: str | None = Field(
        None, description="the identity the consumer job pulls as; it becomes a reader of the transfer. Default: "
                          "the identity of the psik connection (the one the job runs as)")
    consumer_backend: str = Field("default", pattern=PSIK_NAME, description="the Psi-k backend of the consumer job")
    consumer_resources: dict[str, Any] = Field(default_factory=lambda: {"duration": 60},
                                               description="the consumer job's resources (Psi-k; duration in minutes)")
    consumer_environment: dict[str, str] = Field(default_factory=dict,
                                                 description="environment of the consumer job, e.g. CERTIFIED_CONFIG")

    @field_validator("detectors")
    @classmethod
    def _detector_names(cls, names: list[str]) -> list[str]:
        import re

        for name in names:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a detector name")
        return list(dict.fromkeys(names))

    @field_validator("transfer_options")
    @classmethod
    def _options(cls, options: dict[str, Any]) -> dict[str, Any]:
        taken = sorted({"ranks", "readers"} & set(options))
        if taken:
            raise ValueError(f"{', '.join(taken)}: set by the Variables lclstream_ranks and lclstream_consumer_identity")
        TransferOptions.model_validate(options)
        return options

    @field_validator("consumer_resources")
    @classmethod
    def _resources(cls, resources: dict[str, Any]) -> dict[str, Any]:
        Resources.model_validate(resources)
        return resources


def _is_text(annotation: Any) -> bool:
    """A field whose Variable is plain text (str, optional str, a choice of strings)."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return all(a is type(None) or _is_text(a) for a in get_args(annotation))
    return False


def variable_name(field: str) -> str:
    return PREFIX + field


def _airflow_variable(key: str) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(key, default=None)


def read_settings(model: type[S], get: Callable[[str], str | None] | None = None,
                  overrides: dict[str, Any] | None = None) -> S:
    """``model`` from the Variables (``get(name)`` returns a Variable's text or None), then ``overrides``."""
    get = get or _airflow_variable
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        text = get(variable_name(name))
        if text is None or text == "":
            continue
        if _is_text(field.annotation):
            data[name] = text
            continue
        try:
            data[name] = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            raise SettingsError(f"Variable {variable_name(name)}: not JSON ({text[:60]!r}); "
                                f"{field.description}") from None
    data.update(overrides or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            name = str(err["loc"][0]) if err["loc"] else "?"
            where = variable_name(name) if not overrides or name not in overrides else name
            rest = ".".join(map(str, err["loc"][1:]))
            problems.append(f"{'Variable ' if where.startswith(PREFIX) else ''}{where}{'.' + rest if rest else ''}: "
                            f"{err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("; ".join(problems)) from None


def variables_table(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(Variable, default, meaning) of every field, for the README and ``--help`` texts."""
    rows = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = default if isinstance(default, str) else json.dumps(default)
        rows.append((variable_name(name), shown, field.description or ""))
    return rows
