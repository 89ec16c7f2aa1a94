"""``python -m lclstream_api.demo``: the main job through the transfer service, on this machine.

1. creates a service identity and a user identity with ``certified`` (in a temporary directory);
2. starts ``lclstream-api`` on loopback, its jobs on the local Psi-k backend;
3. requests a transfer of a synthetic run (2 MPI ranks, HDF5 with bitshuffle+LZ4);
4. receives it with ``lclstream pull`` (progress on a terminal), checking every rank's sequence;
5. prints the transfer record, and stops everything it started.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from certified import identity, intro
from lclstream_api.client import TransferClient
from lclstream_api.settings import load_settings
from psik.manager import JobManager

BIN = Path(sys.executable).parent
ALIAS = "lclstream"
HOSTS = ["localhost", "127.0.0.1"]


def demo_config(events: int) -> dict[str, Any]:
    return {
        "source_identifier": "exp=demo01:run=1",
        "event_source": {"type": "SyntheticEventSource", "number_of_events": events, "seed": 2024},
        "data_sources": {
            "epix": {"type": "SyntheticAreaDetector", "detector": "epix10k2M"},
            "photon_energy": {"type": "SyntheticScalar", "kind": "photon_energy"},
            "pulse_id": {"type": "SyntheticScalar", "kind": "pulse_id"},
            "timestamp": {"type": "EventTimestamp"},
        },
        "processing_pipeline": [{"type": "BatchProcessingPipeline", "batch_size": 8}],
        "data_serializer": {"type": "HDF5Serializer", "compression": "bitshuffle_lz4",
                            "fields": {"epix": "/entry/data/data", "photon_energy": "/LCLS/photon_energy_eV",
                                       "pulse_id": "/LCLS/pulse_id", "timestamp": "/LCLS/timestamp"}},
        "data_handlers": [{"type": "BinaryFileWritingDataHandler", "write_directory": "unused"}],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def make_identities(root: Path, user: str, api_url: str) -> tuple[Path, Path]:
    server_dir, user_dir = root / "lclstream-api", root / user
    identity.init("lclstream-api", server_dir, hosts=HOSTS)
    identity.init(user, user_dir, hosts=HOSTS)
    introduction = intro.introduce(identity.public_key_pem(user_dir), user, server_dir,
                                   services={ALIAS: api_url})
    intro.add_intro(introduction, user_dir)
    return server_dir, user_dir


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lclstream-api exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"lclstream-api did not listen on port {port} within {timeout:g} s")


def run(out_dir: Path, events: int) -> int:
    user = getpass.getuser() or "demo"
    with tempfile.TemporaryDirectory(prefix="lclstream-demo-") as tmp:
        root = Path(tmp)
        port = free_port()
        api_url = f"https://127.0.0.1:{port}"
        say(f"certified: identities for the service and for user {user!r} in {root}")
        server_dir, user_dir = make_identities(root, user, api_url)
        pool = free_port() % 5000 + 20000
        settings = {"listen": api_url, "callback_listen": f"http://127.0.0.1:{free_port()}",
                    "state_dir": str(root / "state"), "certified_config": str(server_dir),
                    "port_pool": {"start": pool, "end": pool + 99}, "poll_interval": 0.5}
        config_path = root / "service.yaml"
        config_path.write_text(yaml.safe_dump(settings))
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "CERTIFIED_CONFIG": str(user_dir)}
        say(f"starting lclstream-api on {api_url} (jobs on the local Psi-k backend; log in {root}/api.log)")
        with open(root / "api.log", "wb") as log:
            api = subprocess.Popen([str(BIN / "lclstream-api"), "--config", str(config_path)],
                                   stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            wait_listening(port, api)
            with TransferClient(ALIAS, user_dir) as client:
                say(f"requesting a synthetic run: {events} epix10k2M events, 2 MPI ranks, HDF5 bitshuffle+LZ4")
                view = client.request(demo_config(events), {"ranks": 2, "idle_timeout": 120})
                print(f"transfer {view.id}: {view.state.value}, pull from {view.url}")
                say(f"lclstream pull {view.url} --out {out_dir}")
                pulled = subprocess.run([str(BIN / "lclstream"), "pull", view.url, "--out", str(out_dir),
                                         "--wait", "120"], env=env, timeout=600)
                deadline = time.monotonic() + 60
                record = client.status(view.id)
                while not record.state.terminal and time.monotonic() < deadline:
                    time.sleep(0.5)
                    record = client.status(view.id)
                say("the transfer record")
                shown = record.model_dump(mode="json", exclude={"options"})
                for job in shown["jobs"].values():
                    job["log_tail"] = job["log_tail"][-3:]
                print(json.dumps(shown, indent=2))
                files = sorted(out_dir.glob("*.h5"))
                say(f"{len(files)} HDF5 files in {out_dir}; transfer {record.state.value}")
                return 0 if pulled.returncode == 0 and record.state.value == "completed" else 1
        finally:
            api.terminate()
            try:
                api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait(timeout=10)
            psik = JobManager(load_settings(config_path).psik_config())
            for rec in psik.list(limit=1000).jobs:
                if not rec.state.terminal:
                    psik.cancel(rec.jobid)
            say("stopped lclstream-api and every job it started")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lclstream_api.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output") / "transfer", help="where files go")
    parser.add_argument("--events", type=int, default=64, help="events in the synthetic run")
    args = parser.parse_args(argv)
    return run(args.out, args.events)


if __name__ == "__main__":
    sys.exit(main())
