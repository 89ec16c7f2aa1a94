"""An encrypted data stream (tls+tcp): only a consumer with a certificate from the service's data CA reads it."""

from __future__ import annotations

from pathlib import Path

from certified.config import Layout
from lclstream_api.receive import pull
from lclstream_api.transport import DataTLS
from tests.fixtures.pki import make_pki
from tests.lclstream_api.harness import Service, synthetic_config, wait_for


def test_tls_stream_is_readable_only_with_a_data_ca_certificate(tmp_path: Path, api_pki) -> None:
    data = make_pki(tmp_path / "data", server="dtn", users=("consumer",), key_type="p256")
    dtn = Layout(data.server_dir)
    service = Service(tmp_path / "svc", api_pki, overrides={
        "data_tls": {"cert": str(dtn.id_cert), "key": str(dtn.id_key), "ca": str(dtn.ca_cert)}})
    try:
        service.start()
        with service.client("alice") as api:
            view = api.request(synthetic_config(events=16, batch=4), {"ranks": 2, "tls": True})
            assert view.url.startswith("tls+tcp://127.0.0.1:")
            mallory = Layout(data.user_dir("mallory"))
            intruder = pull(view.url, None, idle_timeout=4,
                            tls=DataTLS(cert=str(mallory.id_cert), key=str(mallory.id_key), ca=str(dtn.ca_cert)))
            assert intruder.messages == 0 and not intruder.ended
            consumer = Layout(data.user_dir("consumer"))
            receiver = pull(view.url, tmp_path / "out", idle_timeout=60,
                            tls=DataTLS(cert=str(consumer.intros / "dtn.crt"), key=str(consumer.id_key),
                                        ca=str(dtn.ca_cert)))
            assert receiver.complete(), receiver.ledger.describe_gaps()
            assert receiver.events == 16
            wait_for(lambda: api.status(view.id).state.value == "completed", 60, what="completed")
    finally:
        service.stop()
        service.cleanup_jobs()
