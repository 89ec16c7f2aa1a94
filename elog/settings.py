"""The ELog service's configuration (a YAML file given to ``lclstream-elog serve --config``).

    listen: https://127.0.0.1:8446      # the mutual-TLS API (port 0: any free port)
    database: elog.sqlite               # the run records
    certified_config: certified/elog    # the service's identity (its CA introduces the callers)
    writers: [daq]                      # identities that may open and close runs

Relative paths are resolved against the folder of the config file (as compose files and systemd units
expect), ``~`` is expanded, and ``lclstream-elog serve`` logs the resolved paths when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(ValueError):
    """The config file is missing or invalid; the message names the file and each bad field."""


class ElogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = Field("https://127.0.0.1:8446", description="https://HOST:PORT the API is served on")
    database: Path = Field(description="SQLite file of the run records")
    certified_config: Path | None = Field(None, description="certified identity directory of the service")
    writers: list[str] = Field(default_factory=list,
                               description="identities (certificate names) allowed to open and close runs")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        from certified.serve import parse_listen_url  # (imports uvicorn: only when a config is loaded)

        try:
            parse_listen_url(value)
        except Exception as exc:  # CertifiedError: one sentence saying what a listen URL looks like
            raise ValueError(str(exc)) from None
        return value

    def resolved(self, base: Path) -> ElogSettings:
        """The same settings with every path absolute: ``~`` expanded, relative ones under ``base``."""
        def absolute(path: Path | None) -> Path | None:
            if path is None:
                return None
            path = path.expanduser()
            return path if path.is_absolute() else (base / path).absolute()

        return self.model_copy(update={"database": absolute(self.database),
                                       "certified_config": absolute(self.certified_config)})


def load_settings(path: str | Path, overrides: dict[str, Any] | None = None) -> ElogSettings:
    """Read, validate and resolve a config file; ``overrides`` (e.g. ``--listen``) replace its keys."""
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
        settings = ElogSettings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = {"missing": "required field is missing",
                       "extra_forbidden": "unknown field (not allowed)"}.get(err["type"], err["msg"])
            message = message.removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise SettingsError(f"config file {path}: " + "; ".join(problems)) from None
    return settings.resolved(path.parent.absolute())
