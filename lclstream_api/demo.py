"""``python -m lclstream_api.demo``: the main job through the transfer service, on this machine.

1. creates a service identity and a user identity with ``certified``;
2. starts ``lclstream-api`` on loopback, its jobs on the local Psi-k backend;
3. requests a transfer of a synthetic run (2 MPI ranks, HDF5 with bitshuffle+LZ4);
4. receives it with ``lclstream pull ID`` (which fetches the user's data credentials for this transfer:
   the stream is TLS with certificates made for it; progress on a terminal), checking every rank's
   sequence;
5. prints a short summary of the transfer record (``--json``: the whole record), and stops everything.

Each run has its own folder (``demo-output/<date>-<time>/`` unless ``--out`` names a new or empty one):
``data/`` holds the pulled files, ``service/`` the service's config, identities, database and logs,
including every Psi-k job's log, so the log paths the demo prints still exist afterwards.
"""

from __future__ import annotations

import argparse
import getpass
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lclstream_api.describe import transfer_lines
from lclstream_api.local import ALIAS, BIN, LocalDeployment
from streamer.cli import int_at_least

EXIT_BAD_INPUT = 2


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


def run_folder(out: Path | None, base: Path = Path("demo-output")) -> Path:
    """This run's own folder: ``out`` when it is new or empty, else a fresh ``base/<date>-<time>[-n]``."""
    if out is not None:
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"--out {out} is not empty: give a new or empty folder, so this run's files are "
                             f"not mixed with another's")
        out.mkdir(parents=True, exist_ok=True)
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        folder = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder under {base} for {stamp}")


def run(folder: Path, events: int, as_json: bool) -> int:
    user = getpass.getuser() or "demo"
    data_dir, service_dir = folder / "data", folder / "service"
    deployment = LocalDeployment(service_dir.resolve(), user)
    say(f"run folder {folder}: pulled files in data/, service config, identities and logs in service/")
    with deployment, deployment.client() as client:
        say(f"lclstream-api on {deployment.url} as certified identity 'lclstream-api', user {user!r}; jobs on "
            f"the local Psi-k backend")
        say(f"requesting a synthetic run: {events} epix10k2M events, 2 MPI ranks, HDF5 bitshuffle+LZ4")
        view = client.request(demo_config(events), {"ranks": 2, "idle_timeout": 120})
        print(f"transfer {view.id}: {view.state.value}, data on {view.url} "
              f"({'protected: TLS with certificates made for this transfer' if view.protected else 'NOT protected'})")
        say(f"lclstream pull {view.id} --out {data_dir}")
        pulled = subprocess.run([str(BIN / "lclstream"), "pull", view.id, "--server", ALIAS, "--out",
                                 str(data_dir), "--wait", "120"], env=deployment.env, timeout=600)
        record = client.wait(view.id, timeout=60)
        say("the transfer record" + (" (JSON)" if as_json else " (all of it: python -m lclstream_api.demo --json)"))
        if as_json:
            print(json.dumps(record.model_dump(mode="json"), indent=2))
        else:
            print("\n".join(transfer_lines(record)))
        files = sorted(data_dir.glob("*.h5"))
        say(f"{len(files)} HDF5 files in {data_dir}; transfer {record.state.value}")
    say(f"stopped lclstream-api and every job it started; logs kept: {service_dir / deployment.log_path.name} "
        f"(service), {service_dir / 'state' / 'jobs'}/*/log/ (buffer and producer jobs)")
    return 0 if pulled.returncode == 0 and record.state.value == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lclstream_api.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="this run's folder, new or empty (default: demo-output/<date>-<time>)")
    parser.add_argument("--events", type=int_at_least(1), default=64, help="events in the synthetic run")
    parser.add_argument("--json", action="store_true", help="print the whole transfer record as JSON")
    args = parser.parse_args(argv)
    try:
        folder = run_folder(args.out)
    except ValueError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run(folder, args.events, args.json)


if __name__ == "__main__":
    sys.exit(main())
