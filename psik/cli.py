"""``psik``: submit and manage jobs, one folder per job, on the local or SLURM backend.

``reached``, ``started``, ``ended`` and ``deliver`` are what job scripts call (they need only ``--prefix``, never
the service's config); callbacks of state changes this command records are delivered before it exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from psik import delivery
from psik.accounts import NoAccount
from psik.backends.base import SCRIPT_NAME
from psik.config import InputError, load_config, load_spec
from psik.jobdir import JobDir, JobNotFound, TransitionRefused
from psik.launch import exit_reason, preflight
from psik.manager import BackendForbidden, JobManager, LimitsExceeded, UnknownBackend, Unreachable
from psik.models import JobRecord, JobState
from psik.paths import PathEscape
from psik.safefs import open_file, read_tail
from psik.transitions import reach

JOB_SIDE = frozenset({"reached", "started", "ended", "deliver"})
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
    s.add_argument("--no-deliver", action="store_true", help="leave the callback to a later `psik deliver`")
    s = sub.add_parser("started", help="check the script can start, then record the run active, else failed "
                       "saying why (called by job scripts; exit 1 when it must not run)")
    s.add_argument("jobid")
    s.add_argument("jobndx", type=int)
    s.add_argument("info", nargs="?", default="")
    s.add_argument("--no-deliver", action="store_true", help="leave the callback to a later `psik deliver`")
    s = sub.add_parser("ended", help="record how a run's script ended from its exit code (called by job scripts)")
    s.add_argument("jobid")
    s.add_argument("jobndx", type=int)
    s.add_argument("rc", type=int, help="exit code; 0 completed, 1-127 failed, 128 and above left to the backend")
    s.add_argument("--no-deliver", action="store_true", help="leave the callback to a later `psik deliver`")
    s = sub.add_parser("deliver", help="post a job's undelivered state changes to its callback URL")
    s.add_argument("jobid")
    s.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for another process delivering them (default 60)")
    sub.add_parser("backends", help="list configured backends")
    sub.add_parser("reconcile", help="check unfinished jobs against their backends once")
    return p


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_record(rec: JobRecord) -> None:
    print(f"{rec.jobid}  {rec.spec.name}  backend={rec.spec.backend}  owner={rec.owner}"
          + (f"  account={rec.account}" if rec.account else "")
          + (f"  native={rec.native_id}" if rec.native_id else ""))
    for e in rec.history:
        print(f"  {_stamp(e.time)}  run {e.jobndx}  {e.state.value:<9}  {e.info}")
    if rec.spec.callback:
        delivered = sum(1 for c in rec.callbacks if c.delivered)
        failed = [c for c in rec.callbacks if not c.delivered]
        print(f"  callbacks to {rec.spec.callback}: {delivered} delivered, {len(failed)} failed, "
              f"{rec.callbacks_pending} pending")
        for c in failed:
            print(f"  {_stamp(c.time)}  run {c.jobndx}  {c.state.value:<9}  callback failed after "
                  f"{c.attempts} attempt(s): {c.detail}")


def _follow(mgr: JobManager, args: argparse.Namespace) -> None:
    rec = mgr.get(args.jobid)
    ndx = args.jobndx or rec.jobndx
    job = JobDir.find(mgr.prefix, args.jobid)
    relative = f"log/{args.stream}.{ndx}"
    pos = 0
    while True:
        hist = [e for e in mgr.get(args.jobid).history if e.jobndx == ndx]
        ended = bool(hist) and hist[-1].state.terminal  # checked first: the output is complete once it ended
        try:
            with open_file(job.path, relative, "r") as fh:
                fh.buffer.seek(pos)
                chunk = fh.buffer.read()
            pos += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        except FileNotFoundError:
            pass
        if ended:
            return
        time.sleep(0.5)


def job_side(args: argparse.Namespace) -> int:
    """The commands a job's own script runs, as the job's account: only the job folder is needed."""
    prefix = args.prefix or load_config(args.config).prefix
    job = JobDir.find(prefix.expanduser().absolute(), args.jobid)
    if args.command == "deliver":
        delivery.deliver_pending(job, wait=args.wait)
        return 0
    if args.command == "started":
        spec = job.spec()
        problem = preflight(job.path / SCRIPT_NAME, spec.script, dict(os.environ))
        if problem is not None:
            reach(job, args.jobndx, JobState.FAILED, f"cannot start the script: {problem}",
                  deliver=not args.no_deliver)
            print(f"psik: job {args.jobid} run {args.jobndx}: cannot start the script: {problem}", file=sys.stderr)
            return 1
        state, info = JobState.ACTIVE, args.info
    elif args.command == "ended":
        if args.rc >= 128 or args.rc < 0:
            return 0  # killed by a signal: the backend knows how it ended
        state = JobState.COMPLETED if args.rc == 0 else JobState.FAILED
        info = exit_reason(args.rc, read_tail(job.path, f"log/stderr.{args.jobndx}", 4096))
    else:
        state, info = JobState(args.state), args.info
    if reach(job, args.jobndx, state, info, deliver=not args.no_deliver) is None:
        print(f"psik: job {args.jobid} run {args.jobndx}: transition to {state.value} refused "
              "(run already further along or finished)", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd in JOB_SIDE:
        return job_side(args)
    mgr = JobManager(load_config(args.config, args.prefix))
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
    elif cmd == "backends":
        for b in mgr.backends():
            extra = "  ".join(f"{k}={v}" for k, v in b.model_dump(exclude={"name", "type", "limits"}).items() if v)
            limits = ", ".join(f"{k} <= {v:.10g}" for k, v in b.limits.model_dump().items() if v is not None)
            print(f"{b.name}  {b.type}  {extra}".rstrip() + (f"  limits: {limits}" if limits else ""))
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
    except (PathEscape, UnknownBackend, BackendForbidden, LimitsExceeded, NoAccount, Unreachable) as exc:
        print(f"psik: {exc}", file=sys.stderr)
        return 2
    except (JobNotFound, TransitionRefused) as exc:
        print(f"psik: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        delivery.flush()


if __name__ == "__main__":
    sys.exit(main())
