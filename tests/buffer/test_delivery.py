"""Every message exactly once, FIFO per producer, end seen by every consumer: with real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from buffer.memory import resident_bytes
from buffer.status import BufferState
from tests.buffer.helpers import (
    consume,
    join_all,
    produce,
    read_json,
    start,
    tcp_url,
    wait_for,
)

COUNT = 150
SIZE = 2048


def received_by(results: list[Path]) -> list[list[tuple[int, int]]]:
    out = []
    for r in results:
        data = read_json(r)
        assert data["end"] is True
        out.append([tuple(x) for x in data["received"]])
    return out


def assert_fifo_per_producer(got: list[tuple[int, int]]) -> None:
    last: dict[int, int] = {}
    for producer, seq in got:
        assert seq > last.get(producer, -1), f"producer {producer}: seq {seq} after {last[producer]}"
        last[producer] = seq


def assert_exactly_once(per_consumer: list[list[tuple[int, int]]], expected: set[tuple[int, int]]) -> None:
    allgot = [m for got in per_consumer for m in got]
    assert len(allgot) == len(set(allgot)), "a message was delivered twice"
    assert set(allgot) == expected, f"missing {len(expected - set(allgot))}, unexpected {len(set(allgot) - expected)}"
    for got in per_consumer:
        assert_fifo_per_producer(got)


def test_four_producers_three_consumers_exactly_once(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--producers", "4")
    buf.wait_state(BufferState.WAITING)
    results = [tmp_path / f"c{i}.json" for i in range(3)]
    consumers = [start(consume, send, str(r)) for r in results]
    procs += consumers
    buf.wait_status(lambda s: s.consumers_connected == 3, what="3 consumers connected")
    producers = [start(produce, recv, p, COUNT, SIZE, str(tmp_path / f"p{p}.json")) for p in range(4)]
    procs += producers
    join_all(producers + consumers)
    assert buf.wait(30) == 0
    assert all(read_json(tmp_path / f"p{p}.json")["confirmed"] for p in range(4))
    per_consumer = received_by(results)
    assert_exactly_once(per_consumer, {(p, s) for p in range(4) for s in range(COUNT)})
    assert sum(1 for got in per_consumer if got) >= 2, "round robin should spread messages over consumers"
    final = buf.final()
    assert final.state is BufferState.DONE
    assert final.messages_received == final.messages_sent == 4 * COUNT
    assert final.bytes_sent == 4 * COUNT * SIZE
    assert final.producers_total == 4 and final.consumers_total == 3
    assert final.end_markers_sent >= 3 and final.consumers_connected == 0
    states = [line.state for line in buf.lines()]
    assert states.index(BufferState.WAITING) < states.index(BufferState.STREAMING) \
        < states.index(BufferState.DRAINING) < states.index(BufferState.DONE)


def test_late_consumer_gets_everything_that_waited(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--producers", "2")
    producers = [start(produce, recv, p, 50, SIZE, str(tmp_path / f"p{p}.json")) for p in range(2)]
    procs += producers
    join_all(producers)
    st = buf.wait_state(BufferState.DRAINING)
    assert st.consumers_total == 0
    buf.wait_status(lambda s: s.messages_buffered == 100, what="all 100 messages buffered")
    consumer = start(consume, send, str(tmp_path / "c.json"))
    procs.append(consumer)
    join_all([consumer])
    assert buf.wait(30) == 0
    assert_exactly_once(received_by([tmp_path / "c.json"]), {(p, s) for p in range(2) for s in range(50)})


def test_late_producer_joins_while_streaming(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send)
    consumer = start(consume, send, str(tmp_path / "c.json"))
    procs.append(consumer)
    early = start(produce, recv, 0, 100, SIZE, str(tmp_path / "p0.json"), delay=0.03)
    procs.append(early)
    buf.wait_status(lambda s: s.messages_received >= 5, what="the early producer streaming")
    late = start(produce, recv, 1, 40, SIZE, str(tmp_path / "p1.json"))
    procs.append(late)
    join_all([early, late, consumer])
    assert buf.wait(30) == 0
    final = buf.final()
    assert final.producers_total == 2 and final.producers_refused == 0
    assert_exactly_once(received_by([tmp_path / "c.json"]), {(0, s) for s in range(100)} | {(1, s) for s in range(40)})


def test_producer_killed_mid_stream(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send)
    results = [tmp_path / f"c{i}.json" for i in range(2)]
    consumers = [start(consume, send, str(r)) for r in results]
    procs += consumers
    victim = start(produce, recv, 9, 10_000, SIZE, str(tmp_path / "p9.json"), delay=0.01)
    procs.append(victim)
    buf.wait_status(lambda s: s.messages_received >= 20, what="the victim producer streaming")
    others = [start(produce, recv, p, COUNT, SIZE, str(tmp_path / f"p{p}.json")) for p in range(2)]
    procs += others
    buf.wait_status(lambda s: s.producers_total == 3, what="3 producers connected")
    os.kill(victim.pid, signal.SIGKILL)
    join_all(others + consumers)
    assert buf.wait(30) == 0
    per_consumer = received_by(results)
    allgot = [m for got in per_consumer for m in got]
    assert len(allgot) == len(set(allgot))
    assert {(p, s) for p in range(2) for s in range(COUNT)} <= set(allgot)
    victim_seqs = sorted(s for p, s in allgot if p == 9)
    assert victim_seqs == list(range(len(victim_seqs))), "the killed producer's messages must be a gapless prefix"
    assert 20 <= len(victim_seqs) < 10_000
    for got in per_consumer:
        assert_fifo_per_producer(got)
    final = buf.final()
    assert final.messages_received == final.messages_sent == len(allgot)
    assert final.producers_total == 3


def test_consumer_killed_mid_stream(tmp_path, buffers, procs):
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--producers", "2")
    victim_log = tmp_path / "victim.log"
    victim = start(consume, send, str(tmp_path / "victim.json"), delay=0.02, log=str(victim_log))
    survivor = start(consume, send, str(tmp_path / "survivor.json"), delay=0.002)
    procs += [victim, survivor]
    buf.wait_status(lambda s: s.consumers_connected == 2, what="2 consumers connected")
    # producers pace themselves so that most messages are still to come when the victim dies
    producers = [start(produce, recv, p, COUNT, SIZE, str(tmp_path / f"p{p}.json"), delay=0.01) for p in range(2)]
    procs += producers
    wait_for(lambda: victim_log.exists() and len(victim_log.read_text().splitlines()) >= 10, 60,
             "the victim consumer receiving")
    os.kill(victim.pid, signal.SIGKILL)
    join_all(producers + [survivor])
    assert buf.wait(30) == 0
    survivor_got = received_by([tmp_path / "survivor.json"])[0]
    victim_got = [tuple(map(int, line.split())) for line in victim_log.read_text().splitlines()]
    assert not set(survivor_got) & set(victim_got)
    assert len(survivor_got) == len(set(survivor_got))
    total = 2 * COUNT
    final = buf.final()
    # the buffer sent everything; what the dead consumer took with it is counted as sent
    assert final.messages_sent == final.messages_received == total
    assert len(survivor_got) + len(victim_got) <= total
    assert len(survivor_got) > total // 2
    assert final.consumers_total == 2 and final.state is BufferState.DONE


@pytest.mark.parametrize("direct_wait", ["0", "0.05"])
def test_slow_consumer_small_max_bytes_blocks_producers(tmp_path, buffers, procs, direct_wait):
    """Store and forward (--direct-wait 0): the buffer fills to --max-bytes, then producers block.
    Direct hand-over (the default): producers are held at the consumer's pace; memory stays bounded."""
    size, count, limit = 256 * 1024, 60, 1 << 20
    recv, send = tcp_url(), tcp_url()
    buf = buffers("--recv", recv, "--send", send, "--max-bytes", str(limit), "--report-interval", "0.1",
                  "--producers", "2", "--direct-wait", direct_wait)
    base_rss = resident_bytes(buf.proc.pid)
    consumer = start(consume, send, str(tmp_path / "c.json"), delay=0.05)
    producers = [start(produce, recv, p, count, size, str(tmp_path / f"p{p}.json")) for p in range(2)]
    procs += producers + [consumer]
    peak = base_rss
    while consumer.is_alive() and buf.proc.poll() is None:
        peak = max(peak, resident_bytes(buf.proc.pid))
        consumer.join(0.05)
    join_all(producers + [consumer])
    assert buf.wait(30) == 0
    assert_exactly_once(received_by([tmp_path / "c.json"]), {(p, s) for p in range(2) for s in range(count)})
    lines = buf.lines()
    assert max(line.bytes_buffered for line in lines) <= limit
    # unthrottled, both producers would be done in well under a second; the consumer needs about 6 s:
    # producers still connected after it took half of everything were held back, and nothing was dropped
    assert any(line.producers_connected > 0 and line.messages_sent >= count for line in lines)
    if direct_wait == "0":  # they were blocked while the buffer sat full
        assert any(line.producers_connected > 0 and line.bytes_buffered >= limit - size for line in lines)
        assert lines[-1].messages_direct == 0
    assert peak - base_rss < 40 * (1 << 20), f"buffer RSS grew by {(peak - base_rss) >> 20} MiB for 1 MiB max"
