"""Benchmark of nng-stream: buffered vs direct throughput, and the buffer's RSS under a slow consumer.

    .venv/bin/python bench/buffer_bench.py [--total-mib 512] [--sizes 1,8] [--transports tcp,ipc]

For each message size and transport, 2 producers and 2 consumers move the same data twice, side by
side in one run (alternating, best of --repeat): producer -> consumer directly (each producer's Push0 dials both consumers), and
producer -> nng-stream -> consumer. Prints GB/s of each and their ratio (target >= 0.85), the buffer's CPU
seconds per GiB and the share of messages it passed on without copying them, then the peak RSS of a
store-and-forward buffer (--direct-wait 0, so it fills) fed by fast producers with one slow consumer
(target <= max-bytes + 64 MiB).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import pynng

from buffer.end_marker import END_MARKER
from buffer.memory import resident_bytes
from buffer.nng_side import message_is_end, msg_len

SPAWN = multiprocessing.get_context("spawn")
NNG_STREAM = shutil.which("nng-stream") or str(Path(sys.executable).with_name("nng-stream"))
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_url(transport: str, tmp: str, name: str) -> str:
    return f"tcp://127.0.0.1:{free_port()}" if transport == "tcp" else f"ipc://{tmp}/{name}.ipc"


def producer(urls: list[str], count: int, size: int, ready, go, end_marker: bool) -> None:
    payload = b"\x5a" * size
    with pynng.Push0() as sock:
        for url in urls:
            sock.dial(url, block=False)
        ready.release()
        go.wait()
        for _ in range(count):
            sock.send(payload)
        if end_marker:  # tell the buffer this producer is done; wait for it to hang up (nothing lost)
            removed = threading.Event()
            sock.add_post_pipe_remove_cb(lambda _p: removed.set())
            sock.send(END_MARKER)
            removed.wait(120)
        else:
            time.sleep(1.0)  # let nng finish writing before the socket closes


def consumer(url: str, listen: bool, ready, stop, results, delay: float = 0.0) -> None:
    count, nbytes, last = 0, 0, 0.0
    with pynng.Pull0(recv_max_size=0, recv_timeout=200) as sock:
        if listen:
            sock.listen(url)
        else:
            sock.dial(url, block=False)
        ready.release()
        while True:
            try:
                msg = sock.recv_msg()
            except pynng.Timeout:
                if stop.is_set():
                    break
                continue
            n = msg_len(msg)
            if message_is_end(msg, n):
                break
            count += 1
            nbytes += n
            last = time.time()
            if delay:
                time.sleep(delay)
    results.put((count, nbytes, last))


DIRECT_WAIT: list[str] = []  # --direct-wait passed through to nng-stream (default: its own)


def start_buffer(recv: str, send: str, max_bytes: int, producers: int, status: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([NNG_STREAM, "--recv", recv, "--send", send, "--max-bytes", str(max_bytes),
                             "--producers", str(producers), "--report-interval", "3600", *DIRECT_WAIT,
                             *(["--status-file", status] if status else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reap(buf: subprocess.Popen, grace: float) -> float:
    """Wait up to ``grace`` s for the buffer to exit (else kill it); its CPU seconds (user + system)."""
    deadline = time.monotonic() + grace
    while True:
        pid, status, usage = os.wait4(buf.pid, 0 if time.monotonic() > deadline else os.WNOHANG)
        if pid:
            buf.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            buf.kill()
        time.sleep(0.02)


class Case(NamedTuple):
    gbps: float  # 10^9 bytes per second from the start signal to the last message at any consumer
    buffer_cpu: float = float("nan")  # CPU seconds of the buffer per GiB moved, start signal to last message
    direct: float = float("nan")  # fraction of messages the buffer passed on without copying them


def run_case(transport: str, size: int, total: int, buffered: bool, tmp: str) -> Case:
    per_producer = max(total // size // 2, 1)
    ready, go, stop, results = SPAWN.Semaphore(0), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    procs = []
    buf = None
    try:
        if buffered:
            recv, send = make_url(transport, tmp, "recv"), make_url(transport, tmp, "send")
            status = os.path.join(tmp, "status.json")
            buf = start_buffer(recv, send, 256 * MiB, 2, status)
            time.sleep(1.0)
            cons = [SPAWN.Process(target=consumer, args=(send, False, ready, stop, results)) for _ in range(2)]
            prods = [SPAWN.Process(target=producer, args=([recv], per_producer, size, ready, go, True))
                     for _ in range(2)]
        else:
            urls = [make_url(transport, tmp, f"c{i}") for i in range(2)]
            cons = [SPAWN.Process(target=consumer, args=(u, True, ready, stop, results)) for u in urls]
            prods = [SPAWN.Process(target=producer, args=(urls, per_producer, size, ready, go, False))
                     for _ in range(2)]
        procs = cons + prods
        for p in cons:
            p.start()
        for _ in cons:
            ready.acquire(timeout=60)
        for p in prods:
            p.start()
        for _ in prods:
            ready.acquire(timeout=60)
        time.sleep(1.0)  # let every dial connect
        cpu0 = cpu_seconds(buf.pid) if buf else 0.0
        t0 = time.time()
        go.set()
        expected = 2 * per_producer
        got, last = 0, t0
        if not buffered:
            # direct consumers cannot know the end: stop them once the producers are done and idle
            for p in prods:
                p.join(600)
            stop.set()
        for _ in cons:
            count, _nbytes, t_last = results.get(timeout=600)
            got += count
            last = max(last, t_last)
        buf_cpu = cpu_seconds(buf.pid) if buf else 0.0  # the transfer's share, not start-up and import
        if got != expected:
            raise RuntimeError(f"{transport} {size >> 20} MiB {'buffered' if buffered else 'direct'}: "
                               f"received {got} of {expected} messages")
        gbps = expected * size / (last - t0) / 1e9
        if buf is None:
            return Case(gbps)
        stop_all(stop, procs, None, 0)
        reap(buf, 30)
        cpu = buf_cpu - cpu0
        final = json.loads(Path(status).read_text())
        return Case(gbps, cpu / (expected * size / (1 << 30)), final["messages_direct"] / final["messages_sent"])
    finally:
        stop_all(stop, procs, buf, buffer_grace=30)


def stop_all(stop: Any, procs: list, buf: subprocess.Popen | None, buffer_grace: float) -> None:
    """Tell the helper processes to stop, join (or kill) them, give the buffer ``buffer_grace`` s to exit."""
    stop.set()
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    if buf is None:
        return
    try:
        buf.wait(buffer_grace)
    except subprocess.TimeoutExpired:
        buf.kill()
        buf.wait()


def slow_consumer_rss(tmp: str, size: int, total: int, max_bytes: int) -> tuple[int, int]:
    """Peak and idle RSS of a buffer with 2 fast producers and 1 consumer taking 20 messages/s."""
    per_producer = max(total // size // 2, 1)
    recv, send = make_url("tcp", tmp, "r"), make_url("tcp", tmp, "s")
    saved = DIRECT_WAIT[:]
    DIRECT_WAIT[:] = ["--direct-wait", "0"]  # store and forward: the buffer fills up to --max-bytes
    try:
        buf = start_buffer(recv, send, max_bytes, 2)
    finally:
        DIRECT_WAIT[:] = saved
    ready, go, stop, results = SPAWN.Semaphore(0), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=consumer, args=(send, False, ready, stop, results, 0.05))]
    procs += [SPAWN.Process(target=producer, args=([recv], per_producer, size, ready, go, True)) for _ in range(2)]
    try:
        time.sleep(1.0)
        idle = resident_bytes(buf.pid)
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire(timeout=60)
        go.set()
        peak = idle
        deadline = time.monotonic() + 600
        while buf.poll() is None and time.monotonic() < deadline:
            peak = max(peak, resident_bytes(buf.pid))
            time.sleep(0.02)
        count = results.get(timeout=60)[0]
        if count != 2 * per_producer:
            raise RuntimeError(f"slow consumer received {count} of {2 * per_producer}")
        return peak, idle
    finally:
        stop_all(stop, procs, buf, buffer_grace=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--total-mib", type=int, default=512, help="data per case")
    ap.add_argument("--sizes", default="1,8", help="message sizes in MiB")
    ap.add_argument("--transports", default="tcp,ipc")
    ap.add_argument("--rss-max-mib", type=int, default=64, help="--max-bytes of the slow-consumer buffer")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case; the best is reported")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--direct-wait", help="pass --direct-wait to nng-stream (0 = store and forward only)")
    args = ap.parse_args()
    if args.direct_wait is not None:
        DIRECT_WAIT.extend(["--direct-wait", args.direct_wait])
    total = args.total_mib * MiB
    load = open("/proc/loadavg").read().split()[0]
    print(f"{os.cpu_count()} CPUs, load average {load}; 2 producers, 2 consumers; best of {args.repeat}; "
          "GB/s = 10^9 B/s from the start signal to the last message received")
    print(f"{'transport':>9} {'size':>6} {'direct':>8} {'buffered':>9} {'ratio':>6} {'buffer CPU s/GiB':>17} "
          f"{'not copied':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for transport in [] if args.skip_throughput else args.transports.split(","):
            for size_mib in (int(s) for s in args.sizes.split(",")):
                size = size_mib * MiB
                directs, buffereds = [], []
                for _ in range(args.repeat):  # alternate, so that changing machine load hits both alike
                    directs.append(run_case(transport, size, total, False, tmp))
                    buffereds.append(run_case(transport, size, total, True, tmp))
                direct, best = max(d.gbps for d in directs), max(buffereds, key=lambda c: c.gbps)
                print(f"{transport:>9} {size_mib:>4}Mi {direct:>8.2f} {best.gbps:>9.2f} {best.gbps / direct:>6.2f} "
                      f"{best.buffer_cpu:>17.2f} {best.direct:>10.0%}", flush=True)
        if args.skip_rss:
            return
        max_bytes = args.rss_max_mib * MiB
        peak, idle = slow_consumer_rss(tmp, 8 * MiB, max(total // 2, 4 * max_bytes), max_bytes)
        limit = max_bytes + 64 * MiB
        print(f"slow consumer, 8 MiB messages, --max-bytes {args.rss_max_mib} MiB, --direct-wait 0 (fills up): peak RSS "
              f"{peak / MiB:.0f} MiB (idle {idle / MiB:.0f} MiB); limit max-bytes+64 MiB = {limit / MiB:.0f} MiB; "
              f"ratio {peak / limit:.2f} ({'ok' if peak <= limit else 'OVER'})")


if __name__ == "__main__":
    main()
