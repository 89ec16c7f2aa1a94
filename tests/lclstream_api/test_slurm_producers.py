"""Producers on the SLURM backend: a transfer whose MPI ranks run as a real SLURM job."""

from __future__ import annotations

from pathlib import Path

from lclstream_api.receive import pull
from lclstream_api.transport import open_transfer
from tests.fixtures.pki import Pki
from tests.fixtures.slurm import SlurmCluster, slurm_cluster  # noqa: F401
from tests.lclstream_api.harness import VENV_BIN, Service, synthetic_config, wait_for


def test_producers_run_as_a_slurm_job(tmp_path: Path, api_pki: Pki, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    backends = {"default": {"type": "local"},
                "slurm": {"type": "slurm", "queue_name": slurm_cluster.partition, "mpirun": str(VENV_BIN / "mpiexec")}}
    service = Service(tmp_path / "svc", api_pki, overrides={"backends": backends}, extra_env=slurm_cluster.env)
    try:
        service.start()
        with service.client("alice") as api:
            view = api.request(synthetic_config(events=24, batch=4), {"ranks": 2, "backend": "slurm"})
            _creds, tls = open_transfer(view.id, api)
            receiver = pull(view.url, tmp_path / "out", idle_timeout=120, tls=tls)
            assert receiver.complete(), receiver.ledger.describe_gaps()
            assert receiver.events == 24
            final = wait_for(lambda: (v := api.status(view.id)).state.terminal and v, 90, what="terminal")
            assert final.state.value == "completed", final.reason
            native = wait_for(lambda: _native(service, final.jobs["producer"].jobid), 30, what="slurm job id")
            assert slurm_cluster.wait_for_state(native, {"COMPLETED"}, 60)
    finally:
        service.stop()
        service.cleanup_jobs()


def _native(service: Service, jobid: str) -> str | None:
    from lclstream_api.settings import load_settings
    from psik.manager import JobManager

    return JobManager(load_settings(service.config_path).psik_config()).get(jobid).native_id
