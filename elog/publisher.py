"""Publishing run events to Kafka: one message per event, sent only once the broker acknowledged it.

The value is ``RunEvent.to_json(format)`` (this project's form or LCLS's eLog form), the key
``RunEvent.kafka_key()`` (the experiment, so one experiment's events stay in order on one partition).
The producer is idempotent with ``acks=all``: a retried send cannot write a second copy, so each run
has exactly one run_start and one run_stop. ``publish`` blocks until the broker's acknowledgement,
which the DAQ waits for before writing the first event (run_start) and before exiting (run_stop).

    with RunEventPublisher("127.0.0.1:9092", topic="runs", format="elog") as publisher:
        publisher.publish(record.start_event())
"""

from __future__ import annotations

import logging
import os

from elog.events import RunEvent, WireFormat

log = logging.getLogger("elog.publisher")
BOOTSTRAP_ENV = "LCLSTREAM_KAFKA_BOOTSTRAP"
DEFAULT_TOPIC = "runs"


class PublishError(RuntimeError):
    """The broker could not be reached or did not acknowledge a run event in time."""


def default_bootstrap() -> str | None:
    return os.environ.get(BOOTSTRAP_ENV) or None


class RunEventPublisher:
    def __init__(self, bootstrap: str, topic: str = DEFAULT_TOPIC, format: WireFormat = "lclstream",  # noqa: A002
                 timeout: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.format = format
        self.timeout = timeout
        from kafka import KafkaProducer  # (a heavy import: only where events are published)
        from kafka.errors import KafkaError

        ms = int(timeout * 1000)
        try:
            self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                          max_block_ms=ms, request_timeout_ms=ms, delivery_timeout_ms=ms + 1000,
                                          bootstrap_timeout_ms=ms, linger_ms=0)
        except KafkaError as exc:
            raise PublishError(f"Kafka at {bootstrap} is not reachable within {timeout:g} s: {exc}") from None
        log.info("Kafka producer connected to %s (topic %s, %s form)", bootstrap, topic, format)

    def publish(self, event: RunEvent) -> None:
        """Send one run event and wait until the broker acknowledged it."""
        from kafka.errors import KafkaError

        try:
            metadata = self.producer.send(self.topic, key=event.kafka_key(),
                                          value=event.to_json(self.format)).get(timeout=self.timeout)
        except KafkaError as exc:
            raise PublishError(f"{event.type} of run {event.key} was not acknowledged by Kafka at "
                               f"{self.bootstrap} within {self.timeout:g} s: {exc}") from None
        log.info("%s of run %s published to %s (partition %d, offset %d)", event.type, event.key, self.topic,
                 metadata.partition, metadata.offset)

    def close(self) -> None:
        self.producer.close(timeout=self.timeout)

    def __enter__(self) -> RunEventPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
