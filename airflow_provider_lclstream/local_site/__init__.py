"""The local site: every piece of LCLStream (PKI, Kafka, Psik-API, LCLStream-API, Airflow) on loopback.

One copy, used by ``make demo``, the end-to-end tests (``tests/fixtures/airflow.py`` wraps it) and the
benchmarks. It lives in the provider package because it is the one place that runs Airflow together
with every service the provider talks to, and because ``make demo`` runs it outside the tests
(``lclstream-site up``). It imports no Airflow: every Airflow component runs as its own program.
"""

from airflow_provider_lclstream.local_site.airflow import AirflowInstance, AirflowSettings
from airflow_provider_lclstream.local_site.airflow_client import AirflowClient, AirflowError
from airflow_provider_lclstream.local_site.processes import SiteError
from airflow_provider_lclstream.local_site.site import LocalSite, SiteSettings

__all__ = ["AirflowClient", "AirflowError", "AirflowInstance", "AirflowSettings", "LocalSite", "SiteError",
           "SiteSettings"]
