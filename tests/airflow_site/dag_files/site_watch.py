"""Test-only DAG fired by an external event: ``site_check_watched`` runs when a file appears in
``$LCLSTREAM_SITE_WATCH_DIR`` (``FileEventTrigger`` behind an ``AssetWatcher``). Its task's first line
writes how long after the file's writing it started, to ``results/<name>.json`` in that folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetWatcher, task

WATCH_DIR = os.environ.get("LCLSTREAM_SITE_WATCH_DIR")

if WATCH_DIR:  # the site that sets it also puts the repository on PYTHONPATH
    from tests.airflow_site.site_triggers import FileEventTrigger

    watched = Asset("site_check_watched_files",
                    watchers=[AssetWatcher(name="site_check_files", trigger=FileEventTrigger(directory=WATCH_DIR))])

    with DAG("site_check_watched", schedule=[watched], max_active_runs=16):
        @task
        def first_line(triggering_asset_events: dict | None = None) -> None:
            started = time.time()
            results = Path(WATCH_DIR) / "results"
            results.mkdir(exist_ok=True)
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    payload = (event.extra or {}).get("payload", {})
                    delay = started - payload["written"]
                    (results / f"{payload['name']}.json").write_text(json.dumps(
                        {"name": payload["name"], "latency_s": delay, "batch": sum(len(e) for e in
                                                                              triggering_asset_events.values())}))
                    print(f"site_check_watched {payload['name']} first task line {delay:.3f} s after the event")

        first_line()
