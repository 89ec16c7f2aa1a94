"""The real Kafka broker: kafka-python round trips through it, and its command line behaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from elog.broker import KafkaBroker, KafkaBrokerSettings, round_trip


def test_produce_and_consume(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"test-{uuid.uuid4().hex}"
    sent = [f"message {i}".encode() for i in range(5)]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_block_ms=60000)
    try:
        for value in sent:
            producer.send(topic, value, key=b"run-1").get(timeout=60)
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", consumer_timeout_ms=60000)
    received: list[bytes] = []
    try:
        for record in consumer:  # ends after consumer_timeout_ms without a message
            assert record.key == b"run-1"
            received.append(record.value)
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_round_trip_helper_fails_against_a_closed_port() -> None:
    from elog.broker import free_port

    with pytest.raises(Exception):  # noqa: B017 - kafka-python raises its own NoBrokersAvailable/KafkaTimeoutError
        round_trip(f"127.0.0.1:{free_port()}", timeout=3)


def test_cli_start_prints_bootstrap_and_stops_on_sigterm(tmp_path: Path) -> None:
    if os.environ.get("LCLSTREAM_KAFKA_BOOTSTRAP"):
        pytest.skip("an external broker is configured; not starting a second one")
    err = tmp_path / "stderr.log"
    with open(err, "wb") as errf:
        proc = subprocess.Popen([sys.executable, "-m", "elog.broker", "start", "--timeout", "240"],
                                stdout=subprocess.PIPE, stderr=errf, text=True)
    try:
        assert proc.stdout is not None
        bootstrap = proc.stdout.readline().strip()  # the process prints it only once the broker round-trips
        assert bootstrap.startswith("127.0.0.1:"), err.read_text()
        round_trip(bootstrap, topic=f"cli-{uuid.uuid4().hex}", timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = err.read_text()
    workdir = log.split(", log ", 1)[1].split("/logs/server.log", 1)[0]
    assert not Path(workdir).exists(), "the broker's temporary directory was not removed"
    assert "stopped" in log


def test_cli_rejects_a_kafka_3_version() -> None:
    out = subprocess.run([sys.executable, "-m", "elog.broker", "fetch", "--kafka-version", "3.7.0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--kafka-version" in out.stderr and "Traceback" not in out.stderr


def test_broker_stop_is_idempotent_and_removes_its_directory() -> None:
    if os.environ.get("LCLSTREAM_KAFKA_BOOTSTRAP"):
        pytest.skip("an external broker is configured; not starting another one")
    broker = KafkaBroker(KafkaBrokerSettings(startup_timeout=240))
    with broker:
        workdir = broker.workdir
        assert workdir is not None and (workdir / "data").is_dir()
        pid = broker.proc.pid if broker.proc else -1
    assert not workdir.exists()
    assert broker.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    broker.stop()
