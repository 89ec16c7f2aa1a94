"""Test-only DAGs for the local site's checks (copied into a temporary DAGs folder, never deployed).

``site_check``: a trigger form (Params with titles, descriptions, an enum and sections) whose task
prints its conf. ``site_check_on_asset``: scheduled on the asset ``site_check_asset``; its task prints
the triggering events' ``extra`` and how long after the event's timestamp it started.
"""

from __future__ import annotations

import time

from airflow.sdk import DAG, Asset, Param, task

SITE_ASSET = Asset("site_check_asset")

with DAG(
    "site_check",
    schedule=None,
    doc_md="Checks the local site: a form, a run, a log.",
    params={
        "experiment": Param("mfxl1234", type="string", title="Experiment", pattern=r"^[a-z]{3}[a-z0-9]{2,12}$",
                            description="LCLS experiment name", section="Run"),
        "run": Param(1, type="integer", minimum=1, maximum=9999, title="Run number", section="Run"),
        "detector": Param("epix10k2M", type="string", enum=["epix10k2M", "jungfrau4M"], title="Detector",
                          section="Data"),
    },
):
    @task
    def report(params: dict | None = None) -> str:
        line = f"site_check experiment={params['experiment']} run={params['run']} detector={params['detector']}"
        print(line)
        return line

    report()


with DAG("site_check_on_asset", schedule=[SITE_ASSET]):
    @task
    def on_event(triggering_asset_events: dict | None = None) -> None:
        started = time.time()
        for events in (triggering_asset_events or {}).values():
            for event in events:
                delay = started - event.timestamp.timestamp()
                print(f"site_check_on_asset extra={event.extra} started {delay:.3f} s after the event")

    on_event()
