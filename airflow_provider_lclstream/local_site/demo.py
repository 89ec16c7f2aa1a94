"""``make demo`` (``lclstream-site demo``): the whole system on this machine, and one live run through it.

1. starts the local site (``LocalSite``): a certified PKI, Kafka, the ELog service, Psik-API,
   LCLStream-API and Airflow (SQLite, LocalExecutor) with the DAGs of ``dags/``, and prints the Airflow
   UI's address and login, so the run can be watched there;
2. takes one live run with the DAQ (``lclstream-elog run``: the record in the ELog, growing HDF5 files,
   run_start and run_stop on Kafka);
3. shows the run firing ``lclstream_on_run_start``, the transfer streaming into the consumer job with
   progress (messages, bytes and rate as LCLStream-API's buffer counts them), and the annotation the DAG
   run wrote on the run's record in the ELog;
4. stops every process it started, at the end or on Ctrl-C (``--keep`` stays up until Ctrl-C instead).

Everything lives in one folder (``demo-output/<date>-<time>/``): the site (identities, configs, every log,
the ELog's and Airflow's databases), the run's files (``site/runs``) and what the consumer received
(``site/data``); it stays after the demo. Human lines by default, ``--json`` for one JSON summary.
Exit codes: 0 the run was streamed completely, 1 it was not (or a piece failed to start), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_lclstream.local_site.airflow import AirflowSettings
from airflow_provider_lclstream.local_site.airflow_client import AirflowClient
from airflow_provider_lclstream.local_site.processes import SiteError, interrupt_on_signal
from airflow_provider_lclstream.local_site.site import AIRFLOW_IDENTITY, DAQ_IDENTITY, LocalSite, SiteSettings
from lclstream_api.progress import human_bytes

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
START_DAG = "lclstream_on_run_start"
RUN_DAGS = (START_DAG, "lclstream_on_run_stop", "lclstream_manual")
WAIT = 300.0


class DemoError(RuntimeError):
    """The demo could not go on; the message says where it stopped."""


def say(text: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"== {text}", flush=True)


class ProgressLine:
    """One line rewritten in place on a terminal; elsewhere a line every ``every`` seconds."""

    def __init__(self, quiet: bool, every: float = 5.0) -> None:
        self.tty = sys.stdout.isatty() and not quiet
        self.quiet = quiet
        self.every = every
        self.last = 0.0
        self.shown = False

    def show(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            sys.stdout.write(f"\r   {text}\x1b[K")
            sys.stdout.flush()
            self.shown = True
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            print(f"   {text}", flush=True)

    def done(self) -> None:
        if self.tty and self.shown:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.shown = False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lclstream-site demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="the demo's folder, new or empty "
                                                         "(default: demo-output/<date>-<time>)")
    p.add_argument("--dags", type=Path, default=REPO_DAGS, help=f"the DAGs folder (default {REPO_DAGS})")
    p.add_argument("--experiment", default="demo01", help="experiment of the run (default demo01)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds the run takes data (default 20)")
    p.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    p.add_argument("--shape", default="1,256,256", help="detector shape panels,height,width (default 1,256,256)")
    p.add_argument("--keep", action="store_true", help="after the run, keep everything up until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print one JSON summary instead of the human lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lclstream_api.demo import run_folder

    if not (args.dags / f"{START_DAG}.py").exists():
        print(f"lclstream-site demo: --dags {args.dags} holds no {START_DAG}.py", file=sys.stderr)
        return 2
    if not (0 < args.duration <= 3600 and 0 < args.rate <= 1000):
        print("lclstream-site demo: --duration must be in (0, 3600] s and --rate in (0, 1000] Hz", file=sys.stderr)
        return 2
    try:
        folder = run_folder(args.out)
    except ValueError as exc:
        print(f"lclstream-site demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, stream=sys.stderr,
                        format="   %(message)s")
    for noisy in ("httpx", "elog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its start-up probe's expected misses
    signal.signal(signal.SIGTERM, interrupt_on_signal)
    demo = Demo(folder.absolute(), args)
    try:
        return demo.run()
    except KeyboardInterrupt:
        say("interrupted: stopping everything", args.json)
        return 130
    except (DemoError, SiteError) as exc:
        print(f"lclstream-site demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
        say(f"every process the demo started is stopped; its files and logs stay in {folder}", args.json)


class Demo:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder = folder
        self.args = args
        self.quiet = bool(args.json)
        self.site = LocalSite(SiteSettings(root=folder / "site", airflow=AirflowSettings(dags_folder=args.dags)))
        self.daq: subprocess.Popen[str] | None = None
        self.summary: dict[str, Any] = {"folder": str(folder)}

    def stop(self) -> None:
        if self.daq is not None and self.daq.poll() is None:
            os.killpg(self.daq.pid, signal.SIGINT)  # the DAQ ends its run cleanly
            try:
                self.daq.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.daq.pid, signal.SIGKILL)
                self.daq.wait(timeout=30)
        self.site.stop()

    # -- the steps ------------------------------------------------------------------------------------
    def run(self) -> int:
        say(f"LCLStream demo: the whole system on this machine, everything in {self.folder}", self.quiet)
        say("starting a certified PKI, Kafka, the ELog, Psik-API, LCLStream-API and Airflow (a minute or two)",
            self.quiet)
        self.site.start()
        d = self.site.description()
        a = d["airflow"]
        self.summary.update({"airflow_url": a["url"], "airflow_login": [a["username"], a["password"]],
                             "services": {k: v["url"] for k, v in d["services"].items()},
                             "kafka_bootstrap": d["kafka_bootstrap"], "startup_s": d["timings_s"].get("total")})
        say(f"up in {d['timings_s'].get('total', 0):.0f} s", self.quiet)
        if not self.quiet:
            print(f"   Airflow UI   {a['url']}   login {a['username']} / {a['password']}   (watch the run there)")
            for alias, service in d["services"].items():
                print(f"   {alias:<12} {service['url']}")
            print(f"   Kafka        {d['kafka_bootstrap']}")
        with self.site.airflow.client() as api:  # type: ignore[union-attr]
            for dag in RUN_DAGS:
                api.wait_dag(dag, timeout=WAIT)
            ok = self._one_run(api)
        if self.args.keep and not self.quiet:
            say("everything stays up for you to look around; Ctrl-C stops it", self.quiet)
            try:
                while True:
                    signal.pause()
            except KeyboardInterrupt:
                pass
        if self.quiet:
            print(json.dumps(self.summary, indent=2))
        return 0 if ok else 1

    def _one_run(self, api: AirflowClient) -> bool:
        args = self.args
        say(f"taking a run of {args.experiment} at MFX with the DAQ: {args.duration:g} s at {args.rate:g} Hz, "
            f"jungfrau4M ({args.shape.replace(',', 'x')} pixels), files in {self.site.data_root}", self.quiet)
        argv = self.site.daq_argv("run", "--instrument", "MFX", "--experiment", args.experiment, "--detector",
                                  "jungfrau4M", "--shape", args.shape, "--duration", str(args.duration), "--rate",
                                  str(args.rate), "--no-progress", "--json")
        log = open(self.folder / "daq.log", "w")  # noqa: SIM115 - the DAQ writes it until it ends
        self.daq = subprocess.Popen(argv, env=self.site.env(DAQ_IDENTITY), stdout=subprocess.PIPE, stderr=log,
                                    text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        dag_run = self._wait_dag_run(api, time.time())
        say(f"the run's run_start fired {START_DAG}: DAG run {dag_run}", self.quiet)
        transfer_id = self._wait_xcom(api, dag_run, "stream.transfer", "transfer_id")
        job_id = self._wait_xcom(api, dag_run, "stream.consumer", "job_id")
        say(f"transfer {transfer_id} streams the run into consumer job {job_id} "
            f"(lclstream pull, as the identity hpc)", self.quiet)
        self._follow(transfer_id)
        out, _ = self.daq.communicate(timeout=WAIT)
        log.close()
        if self.daq.returncode != 0:
            raise DemoError(f"the DAQ failed (exit {self.daq.returncode}); see {self.folder / 'daq.log'}")
        record = json.loads(out)["record"]
        say(f"run {record['experiment']}/{record['run']} stopped: {record['event_count']} events in "
            f"{len(record['files'])} file(s)", self.quiet)
        state = api.wait_dag_run(START_DAG, dag_run, timeout=WAIT).state
        note = self._annotation(record)
        body = note.get("body") or {}
        self.summary.update({"run": record, "dag_run": {"dag_id": START_DAG, "run_id": dag_run, "state": state},
                             "annotation": note})
        say(f"DAG run {state}; the annotation it wrote on {record['experiment']}/{record['run']} in the ELog "
            f"(author {note['author']}):", self.quiet)
        if not self.quiet:
            print("\n".join(f"   | {line}" for line in note["text"].splitlines()))
            if body.get("first_message_at"):
                from datetime import datetime

                first = body["first_message_at"] - datetime.fromisoformat(record["start_time"]).timestamp()
                print(f"   first data reached the consumer {first:.1f} s after the run started")
            if body.get("out_dir"):
                files = list(Path(body["out_dir"]).glob("*.h5"))
                print(f"   the consumer's files: {len(files)} HDF5 files and ledger.json in {body['out_dir']}")
        return state == "success" and bool(body.get("ok"))

    # -- watching -------------------------------------------------------------------------------------
    def _wait_dag_run(self, api: AirflowClient, since: float) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self._check_daq()
            runs = [r for r in api.dag_runs(START_DAG) if r.run_type == "asset_triggered"
                    and r.queued_at is not None and r.queued_at.timestamp() >= since - 1]
            if runs:
                return runs[-1].dag_run_id
            time.sleep(0.5)
        raise DemoError(f"no {START_DAG} DAG run within {WAIT:g} s of the run's start")

    def _wait_xcom(self, api: AirflowClient, dag_run: str, task: str, key: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = api.xcom(START_DAG, dag_run, task, key, map_index=0)
            if value:
                return str(value)
            states = {t.task_id: t.state for t in api.task_instances(START_DAG, dag_run)}
            if states.get(task) in ("failed", "upstream_failed") or states.get("runs") == "failed":
                raise DemoError(f"task {task} of DAG run {dag_run} {states.get(task) or 'failed'}; "
                                f"see its log in the Airflow UI")
            time.sleep(0.5)
        raise DemoError(f"task {task} of DAG run {dag_run} gave no {key} within {WAIT:g} s")

    def _follow(self, transfer_id: str) -> None:
        """Progress of the transfer (its buffer's counts) until it ends."""
        from lclstream_api.client import TransferClient

        assert self.site.pki is not None
        line = ProgressLine(self.quiet)
        deadline = time.monotonic() + WAIT + self.args.duration
        with TransferClient("lclstream", self.site.pki.user_dir(AIRFLOW_IDENTITY)) as client:
            while time.monotonic() < deadline:
                view = client.status(transfer_id)
                m = view.metrics
                if m is not None:
                    line.show(f"transfer {view.state.value}: {m.messages_sent} messages, "
                              f"{human_bytes(m.bytes_sent)} delivered to {m.consumers_connected} consumer(s), "
                              f"{human_bytes(m.send_rate_bytes)}/s, {m.send_rate_messages:.1f} msg/s")
                else:
                    line.show(f"transfer {view.state.value}")
                if view.state.terminal:
                    break
                time.sleep(0.5)
        line.done()
        say(f"transfer {transfer_id} {view.state.value}" + (f": {view.reason}" if view.reason else ""), self.quiet)

    def _annotation(self, record: dict[str, Any]) -> dict[str, Any]:
        from elog.client import ElogClient

        assert self.site.pki is not None
        deadline = time.monotonic() + WAIT
        with ElogClient("elog", self.site.pki.user_dir(self.site.settings.users[0])) as elog:
            while time.monotonic() < deadline:
                for note in elog.get(record["experiment"], record["run"]).annotations:
                    if (note.body or {}).get("dag_id") == START_DAG:
                        return note.model_dump(mode="json")
                time.sleep(1.0)
        raise DemoError(f"no annotation by {START_DAG} on the run within {WAIT:g} s")

    def _check_daq(self) -> None:
        if self.daq is not None and self.daq.poll() not in (None, 0):
            raise DemoError(f"the DAQ failed (exit {self.daq.returncode}); see {self.folder / 'daq.log'}")


if __name__ == "__main__":
    sys.exit(main())
