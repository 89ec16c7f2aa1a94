"""The Airflow UI in headless Chromium: log in, open a DAG, fill its trigger form, trigger, see success.

Screenshots of each step are kept in ``test-artifacts/screenshots/<test name>/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import Page, expect

from airflow_provider_lclstream.local_site import AirflowClient, LocalSite

RUN_TIMEOUT = 300


def log_in(page: Page, site: LocalSite) -> None:
    assert site.airflow is not None
    page.goto(site.airflow.url)
    page.get_by_label("Username").fill(site.airflow.username)
    page.get_by_label("Password").fill(site.airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.airflow.url}/")


def test_trigger_form_in_the_browser(airflow_site: LocalSite, airflow_api: AirflowClient, page: Page,
                                     screenshot: Callable[[Page, str], Path]) -> None:
    assert airflow_site.airflow is not None
    url = airflow_site.airflow.url
    page.goto(url)
    expect(page.get_by_label("Username")).to_be_visible()
    screenshot(page, "login")
    log_in(page, airflow_site)

    page.goto(f"{url}/dags/site_check")
    expect(page.get_by_text("site_check").first).to_be_visible()
    screenshot(page, "dag")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    form.get_by_role("button", name="Run", exact=True).click()  # the Params' sections fold
    expect(form.get_by_text("Run number")).to_be_visible()  # the Params' titles label the fields
    form.locator("input[name=element_experiment]").fill("mfxl1023")
    form.get_by_role("spinbutton", name="Run number").fill("77")
    screenshot(page, "form-run-section")
    form.get_by_role("button", name="Data", exact=True).click()
    form.get_by_role("combobox", name="Detector").click()
    page.get_by_role("option", name="jungfrau4M").click()
    screenshot(page, "form-filled")
    form.get_by_role("button", name="Trigger").click()

    page.wait_for_url(re.compile(r"/dags/site_check/runs/"), timeout=60_000)
    run_id = page.url.split("/runs/", 1)[1].split("?")[0]
    screenshot(page, "run-page")
    deadline = time.monotonic() + RUN_TIMEOUT
    header_state = page.get_by_text("Success", exact=True).first
    while not header_state.is_visible():
        assert time.monotonic() < deadline, f"the run page did not show Success within {RUN_TIMEOUT} s"
        page.wait_for_timeout(2000)
        page.reload()
        page.wait_for_load_state("networkidle")
    screenshot(page, "run-succeeded")

    run = airflow_api.dag_run("site_check", unquote(run_id))
    assert run.state == "success"
    assert run.conf == {"experiment": "mfxl1023", "run": 77, "detector": "jungfrau4M"}
    assert "site_check experiment=mfxl1023 run=77 detector=jungfrau4M" in airflow_api.task_log(
        "site_check", run.dag_run_id, "report")
