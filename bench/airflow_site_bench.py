"""Local-site benchmark: Airflow's start-up and memory on this machine, and an external event -> first task.

    python bench/airflow_site_bench.py [--events 10] [--burst 6]

Starts the local site with Airflow only (``airflow_provider_lclstream.local_site``) and the test-only
DAGs of ``tests/airflow_site/dag_files``, then prints:

1. start-up: ``airflow db migrate``, api-server listening, every component healthy (seconds);
2. memory: PSS of each component with its children (LocalExecutor workers, triggerer subprocess);
3. event -> the task's first line, through a real triggerer: a file written to a watched folder is an
   event of ``FileEventTrigger`` behind an ``AssetWatcher``; its task records when it started. The
   first event after start-up alone, then ``--events`` events one at a time (p50, p95, max), then a
   burst of ``--burst`` events written together (p50, max; how many DAG runs they made).

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_lclstream.local_site import AirflowSettings, LocalSite, SiteSettings  # noqa: E402
from tests.fixtures.airflow import copy_dags  # noqa: E402

DAG = "site_check_watched"


def write_event(folder: Path, name: str) -> None:
    tmp = folder / f"{name}.tmp"
    tmp.write_text(repr(time.time()))
    os.replace(tmp, folder / f"{name}.event")


def wait_results(folder: Path, names: list[str], timeout: float = 300.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    paths = [folder / "results" / f"{n}.json" for n in names]
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            missing = [p.stem for p in paths if not p.exists()]
            raise TimeoutError(f"no task for events {missing} within {timeout:g} s")
        time.sleep(0.05)
    time.sleep(0.1)
    return [json.loads(p.read_text()) for p in paths]


def burst_results(watch: Path, names: list[str], site: LocalSite, timeout: float = 60.0) -> list[dict]:
    """The burst's results; events without a task after ``timeout`` are reported, then one more event
    is sent to see whether it frees them (Airflow 3.3's asset queue on SQLite can leave an event of a
    burst waiting for the next event)."""
    try:
        return wait_results(watch, names, timeout=timeout)
    except TimeoutError:
        pass
    missing = [n for n in names if not (watch / "results" / f"{n}.json").exists()]
    taken = [n for n in missing if (watch / f"{n}.taken").exists()]
    print(f"burst: {len(missing)} of {len(names)} events started no task within {timeout:g} s "
          f"({len(taken)} of them handed to Airflow by the trigger)")
    assert site.airflow is not None
    with site.airflow.client() as api:
        stuck = [e for e in api.asset_events("site_check_watched_files", limit=len(names) + 5)
                 if (e.extra or {}).get("payload", {}).get("name") in missing]
        print(f"  asset events recorded for them: {len(stuck)}, DAG runs they created: "
              f"{sum(len(e.created_dagruns) for e in stuck)}")
    write_event(watch, "nudge")
    freed = wait_results(watch, [*missing, "nudge"], timeout=120)
    print(f"  one more event freed them: its DAG run took {freed[-1]['batch']} events")
    return wait_results(watch, names, timeout=1)


def pss_mb(pid: int) -> tuple[float, int]:
    parent = psutil.Process(pid)
    procs = [parent, *parent.children(recursive=True)]
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 1e6, len(procs)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10, help="events sent one at a time")
    parser.add_argument("--burst", type=int, default=6, help="events sent together")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between single events")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="site-bench-") as tmp:
        root = Path(tmp)
        dags = copy_dags(ROOT / "tests" / "airflow_site" / "dag_files", root / "dags")
        watch = root / "watch"
        watch.mkdir()
        env = {"PYTHONPATH": str(ROOT), "LCLSTREAM_SITE_WATCH_DIR": str(watch)}
        settings = SiteSettings(root=root / "site", kafka=False, psik=False, lclstream=False,
                                airflow=AirflowSettings(dags_folder=dags, env=env))
        with LocalSite(settings) as site:
            assert site.airflow is not None
            t = site.airflow.timings
            print(f"start-up: migrate {t['migrate']:.1f} s, api-server listening {t['api_listening']:.1f} s "
                  f"after launch, all healthy {t['healthy']:.1f} s from the start")
            with site.airflow.client() as api:
                since = time.monotonic()
                api.wait_dag(DAG, timeout=300)
                print(f"  {DAG} parsed {time.monotonic() - since:.1f} s after healthy")
            time.sleep(5)  # let the triggerer pick up the watcher
            total = 0.0
            for name, proc in site.airflow.processes.items():
                mb, count = pss_mb(proc.pid)
                total += mb
                print(f"memory: {name:<14} {mb:7.0f} MB PSS in {count} processes")
            print(f"memory: Airflow total  {total:7.0f} MB PSS")

            write_event(watch, "first")
            (first,) = wait_results(watch, ["first"])
            print(f"event -> first task line, first event after start-up: {first['latency_s']:.2f} s")
            single = []
            for i in range(args.events):
                time.sleep(args.gap)
                write_event(watch, f"single{i}")
                single += [r["latency_s"] for r in wait_results(watch, [f"single{i}"])]
            print(f"event -> first task line, {len(single)} single events: p50 {statistics.median(single):.2f} s, "
                  f"p95 {pct(single, 0.95):.2f} s, max {max(single):.2f} s")
            time.sleep(args.gap)
            names = [f"burst{i}" for i in range(args.burst)]
            for name in names:
                write_event(watch, name)
            burst = burst_results(watch, names, site)
            lat = [r["latency_s"] for r in burst]
            print(f"event -> first task line, burst of {len(names)}: p50 {statistics.median(lat):.2f} s, "
                  f"max {max(lat):.2f} s; events per DAG run: {sorted(r['batch'] for r in burst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
