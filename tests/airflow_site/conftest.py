"""One real Airflow (api-server, scheduler, dag-processor, triggerer; SQLite, LocalExecutor) for this
package, with the test-only DAGs of ``dag_files/`` in a temporary DAGs folder; plus the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_lclstream.local_site import AirflowClient, LocalSite
from tests.fixtures.airflow import copy_dags, running_site, site_settings
from tests.fixtures.browser import browser, page, screenshot, screenshot_dir  # noqa: F401

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def watch_env(watch_dir: Path) -> dict[str, str]:
    """Environment that lets Airflow import the test-only trigger and tells the watched DAG its folder."""
    return {"PYTHONPATH": str(ROOT), "LCLSTREAM_SITE_WATCH_DIR": str(watch_dir)}


@pytest.fixture(scope="package")
def airflow_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    dags = copy_dags(HERE / "dag_files", tmp_path_factory.mktemp("dags"))
    env = watch_env(tmp_path_factory.mktemp("watch"))
    with running_site(site_settings(tmp_path_factory.mktemp("site"), dags, services=False,
                                    airflow={"env": env})) as site:
        yield site


@pytest.fixture
def watch_dir(airflow_site: LocalSite) -> Path:
    """The folder whose new ``*.event`` files fire ``site_check_watched``."""
    assert airflow_site.airflow is not None
    return Path(airflow_site.airflow.env["LCLSTREAM_SITE_WATCH_DIR"])


@pytest.fixture
def airflow_api(airflow_site: LocalSite) -> Iterator[AirflowClient]:
    assert airflow_site.airflow is not None
    with airflow_site.airflow.client() as api:
        api.wait_dag("site_check", timeout=180)
        api.wait_dag("site_check_on_asset", timeout=180)
        yield api
