"""Apache Airflow provider for LCLStream: run events from Kafka start DAGs; DAGs request transfers
from LCLStream-API and run consumer jobs through Psik-API, waiting in the triggerer.

Layout as in the official providers: ``hooks/`` (one per service, each turning a connection into that
service's client library), ``triggers/`` (asyncio; ``RunEventTrigger`` behind an ``AssetWatcher``),
``operators/`` and ``sensors/`` (submit on the worker, wait in a trigger), and the manifest
``get_provider_info.get_provider_info`` (the ``apache_airflow_provider`` entry point).
Importing the package imports no Airflow module; the classes are in their modules.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_lclstream.version import __version__

__all__ = ["__version__", "run_events"]


def run_events(context: Any) -> list[dict[str, Any]]:
    """The run events that triggered this DAG run (see ``run_event_context.run_events``)."""
    from airflow_provider_lclstream.run_event_context import run_events as found

    return found(context)
