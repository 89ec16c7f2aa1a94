"""``python -m lclstream_api.demo``: the main job through the transfer service, on this machine.

1. creates a service identity and a user identity with ``certified`` (in a temporary directory);
2. starts ``lclstream-api`` on loopback, its jobs on the local Psi-k backend;
3. requests a transfer of a synthetic run (2 MPI ranks, HDF5 with bitshuffle+LZ4);
4. receives it with ``lclstream pull ID`` (which fetches the user's data credentials for this transfer:
   the stream is TLS with certificates made for it), checking every rank's sequence;
5. prints the transfer record, and stops everything it started.
"""

from __future__ import annotations

import argparse
import getpass
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lclstream_api.local import ALIAS, BIN, LocalDeployment


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


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(out_dir: Path, events: int) -> int:
    user = getpass.getuser() or "demo"
    with tempfile.TemporaryDirectory(prefix="lclstream-demo-") as tmp:
        deployment = LocalDeployment(Path(tmp), user)
        say(f"certified identities for the service and for user {user!r}; lclstream-api on {deployment.url} "
            f"with jobs on the local Psi-k backend (log: {deployment.log_path})")
        with deployment, deployment.client() as client:
            say(f"requesting a synthetic run: {events} epix10k2M events, 2 MPI ranks, HDF5 bitshuffle+LZ4")
            view = client.request(demo_config(events), {"ranks": 2, "idle_timeout": 120})
            print(f"transfer {view.id}: {view.state.value}, data on {view.url} "
                  f"({'protected: TLS with certificates made for this transfer' if view.protected else 'NOT protected'})")
            say(f"lclstream pull {view.id} --out {out_dir}")
            pulled = subprocess.run([str(BIN / "lclstream"), "pull", view.id, "--server", ALIAS, "--out",
                                     str(out_dir), "--wait", "120"], env=deployment.env, timeout=600)
            record = client.wait(view.id, timeout=60)
            say("the transfer record")
            shown = record.model_dump(mode="json", exclude={"options"})
            for job in shown["jobs"].values():
                job["log_tail"] = job["log_tail"][-3:]
            print(json.dumps(shown, indent=2))
            files = sorted(out_dir.glob("*.h5"))
            say(f"{len(files)} HDF5 files in {out_dir}; transfer {record.state.value}")
        say("stopped lclstream-api and every job it started")
        return 0 if pulled.returncode == 0 and record.state.value == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lclstream_api.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output") / "transfer", help="where files go")
    parser.add_argument("--events", type=int, default=64, help="events in the synthetic run")
    args = parser.parse_args(argv)
    return run(args.out, args.events)


if __name__ == "__main__":
    sys.exit(main())
