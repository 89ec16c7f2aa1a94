"""``lclstream_manual`` from the Airflow UI in headless Chromium: log in, open the DAG, fill its trigger
form (the run, then the data choices), trigger it, and see the run succeed; the past run is streamed
into a consumer job and its record in the ELog says so. Screenshots of each step are kept in
``test-artifacts/screenshots/<test name>/``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import Page, expect

from airflow_provider_lclstream.local_site import AirflowClient
from tests.e2e.helpers import Site

MANUAL = "lclstream_manual"
RUN_TIMEOUT = 300


def test_a_person_streams_a_past_run_from_the_trigger_form(e2e_site: Site, airflow_api: AirflowClient, page: Page,
                                                           screenshot: Callable[[Page, str], Path],
                                                           experiment: str) -> None:
    record = e2e_site.take_run(experiment, "--events", "12", "--rate", "30", "--no-kafka")
    airflow = e2e_site.site.airflow
    assert airflow is not None
    page.goto(airflow.url)
    expect(page.get_by_label("Username")).to_be_visible()
    page.get_by_label("Username").fill(airflow.username)
    page.get_by_label("Password").fill(airflow.password)
    screenshot(page, "login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{airflow.url}/")

    page.goto(f"{airflow.url}/dags/{MANUAL}")
    expect(page.get_by_text(MANUAL).first).to_be_visible()
    screenshot(page, "dag")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    form.get_by_role("button", name="Run", exact=True).click()  # the form's sections fold
    expect(form.get_by_role("spinbutton", name="Run number")).to_be_visible()  # the Params' titles label the fields
    form.locator("input[name=element_experiment]").fill(experiment)
    form.get_by_role("spinbutton", name="Run number").fill(str(record.run))
    screenshot(page, "form-run")
    form.get_by_role("button", name="Data", exact=True).click()
    form.get_by_role("combobox", name="Serializer").click()
    page.get_by_role("option", name="MsgpackSerializer").click()
    form.get_by_role("spinbutton", name="Batch size").fill("2")
    screenshot(page, "form-data")
    form.get_by_role("button", name="Trigger").click()

    page.wait_for_url(re.compile(rf"/dags/{MANUAL}/runs/"), timeout=60_000)
    run_id = unquote(page.url.split("/runs/", 1)[1].split("?")[0].split("/")[0])
    screenshot(page, "run-page")
    run = airflow_api.wait_dag_run(MANUAL, run_id, timeout=RUN_TIMEOUT)
    assert run.state == "success", e2e_site.dag_runs_summary(MANUAL)
    deadline = time.monotonic() + 60
    while True:  # the run's page: its state badge says Success, nothing runs any more
        page.reload()
        page.wait_for_load_state("networkidle")
        if page.get_by_text("Running", exact=True).count() == 0 and page.get_by_text("Success", exact=True).count():
            break
        assert time.monotonic() < deadline, "the run's page did not show it succeeded"
        page.wait_for_timeout(1000)
    expect(page.get_by_text(run_id).first).to_be_visible()
    screenshot(page, "run-succeeded")
    assert run.conf is not None
    assert (run.conf["experiment"], run.conf["run"], run.conf["serializer"], run.conf["batch_size"]) == \
        (experiment, record.run, "MsgpackSerializer", 2)
    note = e2e_site.wait_annotation(experiment, record.run, MANUAL)
    assert (note.body or {})["ok"] is True and (note.body or {})["events_delivered"] == 12
    assert (note.body or {})["consumer_messages"] == 12  # CrystFEL's layout: one msgpack map per event
    assert list(Path((note.body or {})["out_dir"]).glob("*.msgpack"))
