"""The ELog service's configuration (a YAML file given to ``lclstream-elog serve --config``).

    listen: https://127.0.0.1:8446      # the mutual-TLS API (port 0: any free port)
    database: elog.sqlite               # the run records
    certified_config: certified/elog    # the service's identity (its CA introduces the callers)
    writers: [daq]                      # identities that may open and close runs
    max_body_bytes: 1048576             # larger request bodies get 413

Paths are ``certified.config_paths.ConfigPath``: relative ones are resolved against the folder of the
config file (as compose files and systemd units expect), ``~`` is expanded, and ``lclstream-elog serve``
logs the resolved paths when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from certified.config_paths import ConfigPath, file_context
from certified.request_guard import DEFAULT_MAX_BODY


class SettingsError(ValueError):
    """The config file is missing or invalid; the message names the file and each bad field."""


class ElogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = Field("https://127.0.0.1:8446", description="https://HOST:PORT the API is served on")
    database: ConfigPath = Field(description="SQLite file of the run records")
    certified_config: ConfigPath | None = Field(None, description="certified identity directory of the service")
    writers: list[str] = Field(default_factory=list,
                               description="identities (certificate names) allowed to open and close runs")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY, ge=1024, le=1 << 30,
                                description="the service answers 413 to larger request bodies")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        from certified.serve import parse_listen_url  # (imports uvicorn: only when a config is loaded)

        try:
            parse_listen_url(value)
        except Exception as exc:  # CertifiedError: one sentence saying what a listen URL looks like
            raise ValueError(str(exc)) from None
        return value


def load_settings(path: str | Path, overrides: dict[str, Any] | None = None) -> ElogSettings:
    """Read and validate a config file (its paths resolved); ``overrides`` (e.g. ``--listen``) replace its keys."""
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must be a mapping of settings")
    data.update(overrides or {})
    try:
        return ElogSettings.model_validate(data, context=file_context(path))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = {"missing": "required field is missing",
                       "extra_forbidden": "unknown field (not allowed)"}.get(err["type"], err["msg"])
            message = message.removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise SettingsError(f"config file {path}: " + "; ".join(problems)) from None
