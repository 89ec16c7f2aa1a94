"""One whole local site for the end-to-end tests of this package: real Kafka (the session's broker, a
topic of its own), the ELog service, Psik-API, LCLStream-API and Airflow's four components on SQLite with
the LocalExecutor, running the project's own ``dags/``. Started once per package (about a minute) and
shared: every test uses its own experiment name, so their runs, transfers and annotations never mix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from airflow_provider_lclstream.local_site import AirflowClient, LocalSite
from tests.e2e.helpers import DAGS, RUN_DAGS, Site
from tests.fixtures.airflow import running_site, site_settings
from tests.fixtures.browser import browser, page, screenshot, screenshot_dir  # noqa: F401
from tests.fixtures.kafka import kafka_bootstrap  # noqa: F401


@pytest.fixture(scope="package")
def e2e_site(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Site]:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    topic = f"runs-e2e-{suffix}"
    kafka = {"conn_type": "lclstream_kafka", "host": kafka_bootstrap,
             "extra": {"topic": topic, "group_id": f"airflow-e2e-{suffix}", "auto_offset_reset": "earliest"}}
    settings = site_settings(tmp_path_factory.mktemp("e2e-site"), DAGS, kafka_bootstrap=kafka_bootstrap,
                             kafka_topic=topic, airflow={"parallelism": 6,
                                                         "connections": {"lclstream_kafka_default": kafka}})
    with running_site(settings) as site:
        with site.airflow.client() as api:  # type: ignore[union-attr]
            for dag in RUN_DAGS:
                api.wait_dag(dag, timeout=300)
        yield Site(site, topic)


@pytest.fixture
def experiment() -> str:
    """A new experiment name for the test: its runs are numbered from 1 in the ELog."""
    return f"e2e{uuid.uuid4().hex[:8]}"


@pytest.fixture
def airflow_api(e2e_site: Site) -> Iterator[AirflowClient]:
    assert e2e_site.site.airflow is not None
    with e2e_site.site.airflow.client() as api:
        yield api


@pytest.fixture
def local_site(e2e_site: Site) -> LocalSite:
    return e2e_site.site

