"""The FIFO's hand-over rules, in one process: when an offered message goes straight to a consumer
connection, when it is stored, and that stored messages go first."""

from __future__ import annotations

import threading
import time

from buffer.fifo import BoundedFifo, Outcome, Signal, Sink, Stored


def test_without_consumers_an_offer_is_stored_at_once():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=5.0)
    lane = fifo.open_lane()
    t0 = time.monotonic()
    offer = fifo.offer(lane, 100)
    assert offer.outcome is Outcome.STORE and time.monotonic() - t0 < 1.0
    fifo.put_offered(offer, b"x" * 100)
    fifo.end_input()
    fifo.close_lane(lane)
    assert fifo.get() == (b"x" * 100, 100)
    fifo.release(100)
    assert fifo.get() is None


def test_a_free_consumer_is_claimed_and_returned():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=5.0)
    sink = Sink(conn="consumer-1")
    fifo.add_sink(sink)
    lane = fifo.open_lane()
    offer = fifo.offer(lane, 100)
    assert offer.outcome is Outcome.CLAIMED and offer.sink is sink and sink.busy
    fifo.unclaim(sink)
    assert not sink.busy
    assert fifo.offer(lane, 100).sink is sink  # free again: the next message goes the same way


def test_busy_consumers_that_stall_make_offers_stored_after_direct_wait():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=0.2)
    fifo.add_sink(Sink(conn="consumer-1"))
    first, second = fifo.open_lane(), fifo.open_lane()
    assert fifo.offer(first, 100).outcome is Outcome.CLAIMED  # the only consumer is now busy
    t0 = time.monotonic()
    offer = fifo.offer(second, 100)  # nobody takes bytes: consumers have stalled
    waited = time.monotonic() - t0
    assert offer.outcome is Outcome.STORE and 0.15 < waited < 2.0


def test_busy_consumers_that_make_progress_hold_the_offer_until_one_is_free():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=0.2)
    sink = Sink(conn="consumer-1")
    fifo.add_sink(sink)
    first, second = fifo.open_lane(), fifo.open_lane()
    assert fifo.offer(first, 100).outcome is Outcome.CLAIMED

    def busy_writer() -> None:  # the consumer keeps taking bytes for 0.6 s, then is free
        for _ in range(12):
            fifo.progress()
            time.sleep(0.05)
        fifo.unclaim(sink)

    writer = threading.Thread(target=busy_writer)
    writer.start()
    offer = fifo.offer(second, 100)
    writer.join(5)
    assert offer.outcome is Outcome.CLAIMED and offer.sink is sink


def test_stored_messages_go_before_offers_and_in_order():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=0.1)
    lane = fifo.open_lane()
    for i in range(2):  # no consumer yet: both stored
        offer = fifo.offer(lane, 10)
        fifo.put_offered(offer, f"m{i}")
    sink = Sink(conn="consumer-1")
    fifo.add_sink(sink)
    got = fifo.take(sink, timeout=1.0)
    assert isinstance(got, Stored) and got.item == "m0" and sink.busy
    fifo.sent(got, sink)
    offer = fifo.offer(lane, 10)  # "m1" is still stored: no direct claim may overtake it
    assert offer.outcome is Outcome.STORE
    fifo.put_offered(offer, "m2")
    items = []
    for _ in range(2):
        got = fifo.take(sink, timeout=1.0)
        assert isinstance(got, Stored)
        items.append(got.item)
        fifo.sent(got, sink)
    assert items == ["m1", "m2"]
    fifo.close_lane(lane)
    fifo.end_input()
    assert fifo.take(sink, timeout=1.0) is Signal.END


def test_a_consumer_gone_before_sending_gives_the_message_back():
    fifo = BoundedFifo(max_bytes=1 << 20, max_messages=10, direct_wait=0.1)
    lane = fifo.open_lane()
    offer = fifo.offer(lane, 10)
    fifo.put_offered(offer, "m0")
    dead = Sink(conn="consumer-1")
    fifo.add_sink(dead)
    got = fifo.take(dead, timeout=1.0)
    assert isinstance(got, Stored)
    fifo.requeue(got, dead)  # its send failed
    assert fifo.take(dead, timeout=1.0) is Signal.STOP
    fifo.remove_sink(dead)
    alive = Sink(conn="consumer-2")
    fifo.add_sink(alive)
    again = fifo.take(alive, timeout=1.0)
    assert isinstance(again, Stored) and again.item == "m0"
