"""One kafka-python consumer on one dedicated thread, handing records to an asyncio event loop.

kafka-python's consumer blocks and is not thread-safe, and a trigger must never block the
triggerer's event loop. So the consumer lives on its own thread for the whole life of the trigger
(never re-created per event): the thread polls, and the loop only awaits :meth:`ConsumerThread.get`.
Commits and seeks are queued to the thread (the only one that touches the consumer) and done between
two polls; a failed commit is retried with the next one (commits are cumulative), so a broker outage
never loses a record, it only delays the commit.

The thread logs one line per state change (connecting, connected with its partitions, broker
unreachable, reconnected, consumer failed and re-created with backoff), never one per poll;
kafka-python's own per-attempt error lines are silenced for that reason (the ``kafka`` logger is set
to CRITICAL unless someone configured it).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

POLL_MS = 200  # longest a queued commit or a stop request waits for the thread
STATE_CHECK_S = 1.0  # how often the connection state is looked at
JOIN_TIMEOUT_S = 60.0  # a consumer that never heartbeated in its group this long is replaced
BACKOFF_START_S, BACKOFF_MAX_S = 1.0, 30.0


class ConsumerStopped(RuntimeError):
    """The consumer thread has ended (stopped, or could not go on); ``get`` raises it."""


class GroupJoinStuck(RuntimeError):
    """The consumer never completed joining its group (no heartbeat); it is replaced by a new one."""


@dataclass(frozen=True)
class _Commit:
    offsets: dict[TopicPartition, int]  # next offset to read, per partition


@dataclass(frozen=True)
class _Seek:
    partition: TopicPartition
    offset: int


def quiet_kafka_logs() -> None:
    """kafka-python logs an ERROR line per reconnect attempt; our state-change lines replace them."""
    kafka_logger = logging.getLogger("kafka")
    if kafka_logger.level == logging.NOTSET:
        kafka_logger.setLevel(logging.CRITICAL)


class ConsumerThread:
    """Runs ``factory()``'s consumer on a thread; records reach the loop through a bounded queue.

    :param factory: makes the consumer (subscribed, or assigned and positioned); called on the thread,
        again after a failure (with backoff).
    :param describe: words for the log lines, e.g. ``"topic runs, group airflow-lclstream"``.
    :param max_queued: records handed to the loop but not yet taken; the thread waits beyond that.
    """

    def __init__(self, factory: Callable[[], KafkaConsumer], describe: str, *, max_queued: int = 1000) -> None:
        self.factory = factory
        self.describe = describe
        self.loop = asyncio.get_running_loop()
        self.records: asyncio.Queue[Any] = asyncio.Queue()
        self.room = threading.Semaphore(max_queued)
        self.commands: queue.SimpleQueue[_Commit | _Seek] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.state = ""
        self._pending: dict[TopicPartition, int] = {}
        self._thread = threading.Thread(target=self._run, name=f"lclstream-kafka[{describe}]", daemon=True)

    # ---- the event loop's side ------------------------------------------------------------------
    def start(self) -> None:
        quiet_kafka_logs()
        self._thread.start()

    async def get(self) -> Any:
        """The next record (a kafka-python ConsumerRecord); raises ConsumerStopped once the thread ended."""
        item = await self.records.get()
        if isinstance(item, ConsumerStopped):
            self.records.put_nowait(item)  # every later get() raises too
            raise item
        self.room.release()
        return item

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) from the consumer thread, soon."""
        if offsets:
            self.commands.put(_Commit(dict(offsets)))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Re-read ``partition`` from ``offset`` (records handed out after it come again)."""
        self.commands.put(_Seek(partition, offset))

    async def stop(self, timeout: float = 30.0) -> None:
        """End the thread (it commits what was queued, then closes the consumer); wait for it off the loop."""
        self.stopping.set()
        self.room.release()  # wake a thread waiting for room
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, timeout)

    # ---- the consumer thread --------------------------------------------------------------------
    def _set_state(self, state: str, level: int = logging.INFO) -> None:
        if state != self.state:
            self.state = state
            log.log(level, "run events (%s): %s", self.describe, state)

    def _hand(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.records.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self.stopping.set()

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        backoff = BACKOFF_START_S
        try:
            while not self.stopping.is_set():
                if consumer is None:
                    self._set_state("connecting")
                    try:
                        consumer = self.factory()
                    except Exception as exc:
                        self._set_state(f"cannot create the consumer ({exc!r}); retrying with backoff", logging.WARNING)
                        self.stopping.wait(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX_S)
                        continue
                try:
                    self._serve(consumer)
                    backoff = BACKOFF_START_S
                except Exception as exc:
                    self._set_state(f"consumer failed ({exc!r}); a new one in {backoff:g} s", logging.WARNING)
                    self._close(consumer)
                    consumer = None
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            if consumer is not None:
                self._run_commands(consumer)
                self._close(consumer)
            self._set_state("stopped")
            self._hand(ConsumerStopped(f"run event consumer ({self.describe}) stopped"))

    def _serve(self, consumer: KafkaConsumer) -> None:
        """Poll and hand records on until asked to stop; raises when the consumer fails."""
        next_check, created = 0.0, time.monotonic()
        while not self.stopping.is_set():
            self._run_commands(consumer)
            batches = consumer.poll(timeout_ms=POLL_MS)
            # records mean the broker is back: say so before they are handed on, not at the next check
            if time.monotonic() >= next_check or (batches and not self.state.startswith("connected")):
                self._check_connection(consumer, time.monotonic() - created)
                next_check = time.monotonic() + STATE_CHECK_S
            for records in batches.values():
                for record in records:
                    while not self.room.acquire(timeout=1.0):
                        if self.stopping.is_set():
                            return
                    if self.stopping.is_set():
                        return
                    self._hand(record)

    def _check_connection(self, consumer: KafkaConsumer, age: float) -> None:
        every = consumer.metrics()
        metrics = every.get("consumer-metrics", {})
        group = every.get("consumer-coordinator-metrics") if consumer.config.get("group_id") else None
        if group is not None and age > JOIN_TIMEOUT_S and group.get("last-heartbeat-seconds-ago") == float("inf"):
            raise GroupJoinStuck(f"no heartbeat in its consumer group within {age:.0f} s")
        if metrics.get("connection-count", 0) > 0:
            parts = sorted((tp.topic, tp.partition) for tp in consumer.assignment())
            where = ", ".join(f"{t}[{p}]" for t, p in parts) or "no partitions assigned yet"
            self._set_state(f"connected ({where})")
        elif self.state.startswith("connected"):
            self._set_state("broker unreachable; kafka-python reconnects with backoff", logging.WARNING)

    def _run_commands(self, consumer: KafkaConsumer) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                break
            if isinstance(command, _Commit):
                for tp, offset in command.offsets.items():
                    self._pending[tp] = max(offset, self._pending.get(tp, 0))
            else:
                try:
                    consumer.seek(command.partition, command.offset)
                    log.info("run events (%s): re-reading %s[%d] from offset %d", self.describe,
                             command.partition.topic, command.partition.partition, command.offset)
                except Exception as exc:  # partition no longer assigned: the group re-delivers anyway
                    log.warning("run events (%s): seek to %d failed: %r", self.describe, command.offset, exc)
        if self._pending:
            self._commit_pending(consumer)

    def _commit_pending(self, consumer: KafkaConsumer) -> None:
        offsets = {tp: OffsetAndMetadata(offset) for tp, offset in self._pending.items()}
        try:
            consumer.commit(offsets=offsets, timeout_ms=int(POLL_MS * 25))
        except Exception as exc:  # retried with the next commands; never lost, maybe re-delivered
            self._set_state(f"commit failed ({exc!r}); will retry", logging.WARNING)
            owned = consumer.assignment()  # partitions given to another consumer are its to commit now
            self._pending = {tp: offset for tp, offset in self._pending.items() if tp in owned}
            return
        self._pending.clear()
        if self.state.startswith("commit failed"):
            self._set_state("commits succeed again")

    @staticmethod
    def _close(consumer: KafkaConsumer) -> None:
        try:
            consumer.close(autocommit=False)
        except Exception as exc:
            log.debug("closing the consumer: %r", exc)
