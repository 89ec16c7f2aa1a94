"""A test-only event trigger for the site's checks and bench: a file appearing in a folder is an event.

Airflow's triggerer imports it as ``tests.airflow_site.site_triggers`` (the site puts the repository on
its ``PYTHONPATH``); an ``AssetWatcher`` needs its trigger importable from an installed path, not from
the DAGs folder. Each ``*.event`` file holds the ``time.time()`` of its writing; the trigger renames it to
``*.taken`` once the event is yielded, so a re-created trigger hands on only what it has not handed on.
It keeps running after an event (a trigger that returns is re-created about 1.5 s later).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class FileEventTrigger(BaseEventTrigger):
    def __init__(self, directory: str, poll_interval: float = 0.01) -> None:
        super().__init__()
        self.directory = directory
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.{type(self).__name__}", {"directory": self.directory,
                                                     "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        folder = Path(self.directory)
        while True:
            names = await asyncio.to_thread(lambda: sorted(p.name for p in folder.glob("*.event")))
            for name in names:
                path = folder / name
                written = float(path.read_text() or 0)
                yield TriggerEvent({"name": path.stem, "written": written})
                os.replace(path, path.with_suffix(".taken"))
            await asyncio.sleep(self.poll_interval)
