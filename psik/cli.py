"""``psik``: submit and manage jobs, one folder per job, on the local or SLURM backend."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from psik.config import InputError, load_config, load_spec
from psik.jobdir import JobDir, JobNotFound, TransitionRefused
from psik.manager import BackendForbidden, JobManager, UnknownBackend
from psik.models import JobRecord, JobState
from psik.paths import PathEscape
from psik.transitions import reach

STATES = [s.value for s in JobState]


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="psik", description=__doc__)
    p.add_argument("--config", type=Path, help="config file (YAML or JSON); default: $PSIK_CONFIG, "
                   "else a 'default' local backend")
    p.add_argument("--prefix", type=Path, help="folder holding the job folders (overrides the config)")
    p.add_argument("-v", "--verbose", action="store_true", help="log state changes and callbacks")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="submit a job from a JobSpec file (YAML or JSON)")
    s.add_argument("spec", type=Path)
    s = sub.add_parser("ls", help="list jobs, newest first")
    s.add_argument("--state", choices=STATES)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("status", help="state history of one job")
    s.add_argument("jobid")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("logs", help="print a run's output")
    s.add_argument("jobid")
    s.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    s.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    s.add_argument("--jobndx", type=int, help="which run (default: the latest)")
    s = sub.add_parser("cancel", help="cancel the current run of a job")
    s.add_argument("jobid")
    s = sub.add_parser("rerun", help="run a finished job again (new jobndx)")
    s.add_argument("jobid")
    s = sub.add_parser("reached", help="record a state change (called by job scripts)")
    s.add_argument("jobid")
    s.add_argument("jobndx", type=int)
    s.add_argument("state", choices=STATES)
    s.add_argument("info", nargs="?", default="")
    sub.add_parser("backends", help="list configured backends")
    sub.add_parser("reconcile", help="check unfinished jobs against their backends once")
    return p


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_record(rec: JobRecord) -> None:
    print(f"{rec.jobid}  {rec.spec.name}  backend={rec.spec.backend}  owner={rec.owner}"
          + (f"  native={rec.native_id}" if rec.native_id else ""))
    for e in rec.history:
        print(f"  {_stamp(e.time)}  run {e.jobndx}  {e.state.value:<9}  {e.info}")


def _follow(mgr: JobManager, args: argparse.Namespace) -> None:
    rec = mgr.get(args.jobid)
    ndx = args.jobndx or rec.jobndx
    path = JobDir.find(mgr.prefix, args.jobid).log_path(args.stream, ndx)
    pos = 0
    while True:
        if path.is_file():
            with open(path, "rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        hist = [e for e in mgr.get(args.jobid).history if e.jobndx == ndx]
        if hist and hist[-1].state.terminal and (not path.is_file() or path.stat().st_size == pos):
            return
        time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    mgr = JobManager(load_config(args.config, args.prefix))
    cmd = args.command
    if cmd == "submit":
        rec = mgr.submit(load_spec(args.spec))
        print(rec.jobid)
    elif cmd == "ls":
        mgr.reconcile()  # runs that died without reporting show how they ended
        jobs = mgr.list(state=JobState(args.state) if args.state else None, limit=10**9).jobs
        if args.json:
            print(json.dumps([j.model_dump(mode="json") for j in jobs], indent=1))
        for j in [] if args.json else jobs:
            print(f"{j.jobid}  {j.state.value:<9}  run {j.jobndx}  {j.spec.backend:<10}  {j.spec.name}  {j.info}")
    elif cmd == "status":
        rec = mgr.get(args.jobid)
        print(rec.model_dump_json(indent=1)) if args.json else _print_record(rec)
    elif cmd == "logs":
        if args.follow:
            _follow(mgr, args)
        else:
            sys.stdout.write(mgr.logs(args.jobid, stream=args.stream, jobndx=args.jobndx))
    elif cmd == "cancel":
        rec = mgr.cancel(args.jobid)
        print(f"{rec.jobid} run {rec.jobndx}: {rec.state.value}")
    elif cmd == "rerun":
        rec = mgr.rerun(args.jobid)
        print(f"{rec.jobid} run {rec.jobndx}: {rec.state.value}")
    elif cmd == "reached":
        job = JobDir.find(mgr.prefix, args.jobid)
        if reach(job, args.jobndx, JobState(args.state), args.info) is None:
            print(f"psik: job {args.jobid} run {args.jobndx}: transition to {args.state} refused "
                  "(run already further along or finished)", file=sys.stderr)
            return 1
    elif cmd == "backends":
        for b in mgr.backends():
            extra = "  ".join(f"{k}={v}" for k, v in b.model_dump(exclude={"name", "type"}).items() if v)
            print(f"{b.name}  {b.type}  {extra}".rstrip())
    elif cmd == "reconcile":
        print(f"checked {mgr.reconcile()} jobs")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run(args)
    except InputError as exc:
        exc.report("psik")
        return 2
    except (PathEscape, UnknownBackend, BackendForbidden) as exc:
        print(f"psik: {exc}", file=sys.stderr)
        return 2
    except (JobNotFound, TransitionRefused) as exc:
        print(f"psik: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
