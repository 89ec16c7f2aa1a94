"""Shared pieces of the operators and sensors: argument checks at DAG parse time, the deferrable
default, and running a trigger's wait on the worker when the task does not defer.

Arguments are checked when the DAG file is parsed, so a bad one fails there with the task and the
argument named (``LCLStreamTransferOperator(task_id='transfer'): options.ranks: ...``); values that
still hold Jinja templates are checked again once rendered, at execute time.
"""

from __future__ import annotations

import asyncio
import configparser
import os
from collections.abc import Collection
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ArgumentError(ValueError):
    """A task argument that cannot work; the message names the task and the argument."""


def default_deferrable() -> bool:
    """Deferrable unless the deployment sets ``[operators] default_deferrable`` (then that value)."""
    from airflow.sdk.configuration import conf

    if os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE") is not None or \
            configparser.ConfigParser.has_option(conf, "operators", "default_deferrable"):
        return conf.getboolean("operators", "default_deferrable")
    return True


def resolved_later(value: Any) -> bool:
    """True for an ``XComArg`` or a mapped task group's argument: Airflow resolves it when the task runs."""
    from airflow.sdk.definitions._internal.mixins import ResolveMixin

    return isinstance(value, ResolveMixin)


def templated(value: Any) -> bool:
    """True when ``value`` (or anything inside it) still holds a Jinja expression, an ``XComArg`` or a
    mapped task group's argument: values known only when the task runs, so checked then."""
    if resolved_later(value):
        return True
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(templated(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(templated(v) for v in value)
    return False


def unset(value: Any) -> bool:
    """An argument left out: None, or what an unset template renders to ("" or "None")."""
    return value in (None, "", "None")


def check_model(model: type[M], value: Any, argument: str, task: str) -> M:
    """``value`` validated as ``model``; a ValidationError becomes one ArgumentError naming the field
    (``argument.field``; with ``argument=""`` the model's fields are the task's own arguments)."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            path = ".".join([argument, *map(str, err["loc"])] if argument else map(str, err["loc"]))
            problems.append(f"{path or 'arguments'}: {err['msg']}")
        raise ArgumentError(f"{task}: {'; '.join(problems)}") from None


def check_choice(value: Any, allowed: Collection[Any], argument: str, task: str) -> None:
    if value not in allowed:
        raise ArgumentError(f"{task}: {argument}: must be one of {sorted(allowed)}, got {value!r}")


def check_positive(value: Any, argument: str, task: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ArgumentError(f"{task}: {argument}: must be a positive number, got {value!r}")


def task_name(operator: Any) -> str:
    return f"{type(operator).__name__}(task_id={operator.task_id!r})"


def wait_here(trigger: BaseTrigger) -> dict[str, Any]:
    """Run ``trigger`` on the worker until its first event (the non-deferrable wait); its payload."""

    async def first() -> dict[str, Any]:
        events = trigger.run()
        try:
            event = await anext(events)
        finally:
            await events.aclose()
        return event.payload

    return asyncio.run(first())
