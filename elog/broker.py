"""A real Apache Kafka 4.x broker for tests and the local demo, fetched from Maven Central.

No Airflow, no Kafka distribution tarball: the ``org.apache.kafka:kafka_2.13`` artifact, its runtime
dependencies and a log4j2 SLF4J binding are copied by ``mvn dependency:copy-dependencies`` into
``$LCLSTREAM_CACHE/kafka-<version>/libs`` (default cache ``~/.cache/lclstream``) once, and reused.
Each start formats fresh KRaft storage in a temporary directory and runs one combined
broker+controller JVM on two free 127.0.0.1 ports; it counts as started only once a kafka-python
producer and consumer have round-tripped a message through it. Stopping sends SIGTERM, waits, then
kills, and removes the temporary directory.

Python API::

    from elog.broker import KafkaBroker, KafkaBrokerSettings
    with KafkaBroker(KafkaBrokerSettings()) as broker:
        print(broker.bootstrap)          # "127.0.0.1:40123"
        print(broker.log_path)           # broker's own log file (log4j2)

    fetch_kafka(KafkaBrokerSettings())   # only download the jars, returns the libs directory

Command line::

    python -m elog.broker start [--kafka-version V] [--port P] [--timeout S]
        # prints the bootstrap address on stdout, stays up until Ctrl-C or SIGTERM
    python -m elog.broker fetch          # only download the jars

Environment: ``LCLSTREAM_CACHE`` (cache root), ``LCLSTREAM_KAFKA_VERSION`` (default below),
``JAVA`` and ``MVN`` (executables, default ``java`` and ``mvn`` on PATH). Users who already run a
broker set ``LCLSTREAM_KAFKA_BOOTSTRAP``; the pytest fixture ``tests.fixtures.kafka.kafka_bootstrap``
then uses that address and starts nothing.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

DEFAULT_KAFKA_VERSION = "4.1.2"
LOG4J_VERSION = "2.24.3"  # the log4j2 line Kafka 4.x is built against
READY_TOPIC = "lclstream-broker-ready"


def default_cache_root() -> Path:
    return Path(os.environ.get("LCLSTREAM_CACHE") or Path.home() / ".cache" / "lclstream")


class KafkaBrokerSettings(BaseModel):
    """How to obtain and run the broker. Every field has a working default."""

    model_config = ConfigDict(extra="forbid")

    kafka_version: str = Field(
        default_factory=lambda: os.environ.get("LCLSTREAM_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
        pattern=r"^4\.\d+\.\d+$",
        description="Apache Kafka 4.x release on Maven Central, e.g. 4.1.2",
    )
    cache_root: Path = Field(default_factory=default_cache_root)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="broker port; 0 picks a free one")
    controller_port: int = Field(0, ge=0, le=65535, description="KRaft controller port; 0 picks a free one")
    startup_timeout: float = Field(180.0, gt=0, description="seconds to wait for a produce/consume round trip")
    stop_timeout: float = Field(30.0, gt=0, description="seconds to wait after SIGTERM before killing")
    fetch_timeout: float = Field(600.0, gt=0, description="seconds allowed for the Maven download")
    heap: str = Field("512m", pattern=r"^\d+[kmg]$", description="JVM -Xmx")
    java: str = Field(default_factory=lambda: os.environ.get("JAVA", "java"))
    mvn: str = Field(default_factory=lambda: os.environ.get("MVN", "mvn"))

    @property
    def cache_dir(self) -> Path:
        return self.cache_root / f"kafka-{self.kafka_version}"


class BrokerError(RuntimeError):
    """The broker could not be fetched, started or reached; the message says which step failed."""


class _Progress:
    """One self-overwriting status line on a terminal; silent when stderr is not a TTY."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._width = 0

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write("\r" + text.ljust(self._width))
            sys.stderr.flush()
            self._width = len(text)

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


# --------------------------------------------------------------------------------------------- fetch

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lclstream</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_DOWNLOADED = re.compile(r"Downloaded from \S+: \S+ \((?P<size>[\d.]+) (?P<unit>[kMG]?B)")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def fetch_kafka(settings: KafkaBrokerSettings, progress: _Progress | None = None) -> Path:
    """Make sure the jars for ``settings.kafka_version`` are in the cache; return the libs directory.

    Safe to call from several processes at once (a file lock serialises the download).
    """
    cache = settings.cache_dir
    libs = cache / "libs"
    stamp = cache / "complete"
    if stamp.exists():
        return libs
    progress = progress or _Progress()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():  # another process fetched while we waited
            return libs
        if shutil.which(settings.mvn) is None:
            raise BrokerError(f"cannot fetch Kafka: Maven ('{settings.mvn}') is not on PATH (apt install maven)")
        (cache / "pom.xml").write_text(_POM.format(kafka=settings.kafka_version, log4j=LOG4J_VERSION))
        staging = cache / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("fetching Apache Kafka %s jars from Maven Central into %s", settings.kafka_version, libs)
        cmd = [settings.mvn, "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        output = _run_maven(cmd, settings.fetch_timeout, progress)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if f"kafka_2.13-{settings.kafka_version}.jar" not in jars:
            raise BrokerError(f"Maven finished but kafka_2.13-{settings.kafka_version}.jar is missing; "
                              f"mvn output ends with:\n{output}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        stamp.write_text("\n".join(jars) + "\n")
        log.info("fetched %d jars for Kafka %s", len(jars), settings.kafka_version)
    return libs


def _run_maven(cmd: list[str], timeout: float, progress: _Progress) -> str:
    """Run Maven, turning its 'Downloaded from' lines into a progress/rate line; return its tail."""
    started = time.monotonic()
    files, nbytes = 0, 0.0
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-40:]
            m = _DOWNLOADED.search(line)
            if m:
                files += 1
                nbytes += float(m["size"]) * _UNITS[m["unit"]]
                rate = nbytes / max(time.monotonic() - started, 1e-3)
                progress.show(f"fetching Kafka jars: {files} files, {nbytes / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s")
        rc = proc.wait()
    finally:
        timer.cancel()
        progress.done()
    text = "\n".join(tail)
    if rc != 0:
        why = f"timed out after {timeout:.0f} s" if time.monotonic() - started >= timeout else f"exit code {rc}"
        raise BrokerError(f"'{' '.join(cmd[:4])} ...' failed ({why}); output ends with:\n{text}")
    return text


# --------------------------------------------------------------------------------------------- run

def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _random_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _server_properties(host: str, port: int, cport: int, data_dir: Path) -> str:
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{cport}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=1
"""


def _log4j2_properties(log_path: Path) -> str:
    return f"""status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
"""


def die_with_parent() -> None:
    """``preexec_fn`` for service subprocesses: the child gets SIGTERM when its parent dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def round_trip(bootstrap: str, topic: str = READY_TOPIC, timeout: float = 30.0) -> None:
    """Produce one unique message to ``topic`` and consume it back; raise if that fails in time."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    token = uuid.uuid4().hex.encode()
    timeout_ms = int(timeout * 1000)
    # kafka-python >= 3 calls it bootstrap_timeout_ms, 2.x api_version_auto_timeout_ms
    boot = ("bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG
            else "api_version_auto_timeout_ms")
    producer = KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                             max_block_ms=timeout_ms, retries=5, **{boot: timeout_ms})
    try:
        meta = producer.send(topic, token).get(timeout=timeout)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=timeout_ms,
                             request_timeout_ms=max(timeout_ms, 31000), **{boot: timeout_ms})
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                if any(r.value == token for r in records):
                    return
        raise BrokerError(f"produced a message to {topic} at offset {meta.offset} but could not consume it "
                          f"within {timeout:.0f} s")
    finally:
        consumer.close()


class KafkaBroker:
    """One combined broker+controller JVM on 127.0.0.1; a context manager (``start``/``stop``)."""

    def __init__(self, settings: KafkaBrokerSettings | None = None, progress: _Progress | None = None) -> None:
        self.settings = settings or KafkaBrokerSettings()
        self.progress = progress or _Progress()
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.bootstrap = ""
        self.controller = ""

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "logs" / "server.log" if self.workdir else None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> str:
        """Fetch (if needed), format, launch and wait for a round trip. Returns the bootstrap address."""
        s = self.settings
        if shutil.which(s.java) is None:
            raise BrokerError(f"cannot start Kafka: Java ('{s.java}') is not on PATH (apt install default-jre-headless)")
        libs = fetch_kafka(s, self.progress)
        self.workdir = Path(tempfile.mkdtemp(prefix="lclstream-kafka-"))
        try:
            self._launch(libs)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def _java_cmd(self, libs: Path, main: str, *args: str) -> list[str]:
        assert self.workdir is not None
        logs = self.workdir / "logs"
        return [self.settings.java, f"-Xmx{self.settings.heap}", "-Xss1m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "-cp", f"{libs}/*", main, *args]

    def _launch(self, libs: Path) -> None:
        s, work = self.settings, self.workdir
        assert work is not None
        port = s.port or free_port(s.host)
        cport = s.controller_port or free_port(s.host)
        while cport == port:
            cport = free_port(s.host)
        (work / "logs").mkdir()
        props = work / "server.properties"
        props.write_text(_server_properties(s.host, port, cport, work / "data"))
        (work / "log4j2.properties").write_text(_log4j2_properties(work / "logs" / "server.log"))
        self.progress.show("formatting KRaft storage ...")
        fmt = subprocess.run(
            self._java_cmd(libs, "kafka.tools.StorageTool", "format", "--standalone",
                           f"--cluster-id={_random_cluster_id()}", "-c", str(props)),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if fmt.returncode != 0:
            raise BrokerError(f"kafka-storage format failed (exit {fmt.returncode}):\n{fmt.stdout}{fmt.stderr}")
        self.bootstrap, self.controller = f"{s.host}:{port}", f"{s.host}:{cport}"
        self._run_broker(libs)

    def _run_broker(self, libs: Path) -> None:
        assert self.workdir is not None
        with open(self.workdir / "logs" / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(self._java_cmd(libs, "kafka.Kafka", str(self.workdir / "server.properties")),
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=die_with_parent)
        log.info("Kafka %s starting: pid %d, bootstrap %s, controller %s, log %s",
                 self.settings.kafka_version, self.proc.pid, self.bootstrap, self.controller, self.log_path)

    def restart(self) -> None:
        """Stop the broker process and start it again on the same ports with the same data (topics,
        messages, committed offsets): what clients see when a broker is restarted."""
        if self.workdir is None:
            raise BrokerError("restart: the broker was never started")
        self._terminate()
        try:
            self._run_broker(fetch_kafka(self.settings, self.progress))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + self.settings.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.progress.show(f"starting Kafka on {self.bootstrap} ... {time.monotonic() - started:.0f} s")
            if self.proc.poll() is not None:
                raise BrokerError(f"Kafka exited with code {self.proc.returncode} while starting; "
                                  f"log ends with:\n{self._log_tail()}")
            try:
                with socket.create_connection(tuple(self.bootstrap.rsplit(":", 1)), timeout=2):  # type: ignore[arg-type]
                    pass
                round_trip(self.bootstrap, timeout=min(60.0, max(5.0, deadline - time.monotonic())))
                self.progress.done()
                log.info("Kafka ready on %s after %.1f s", self.bootstrap, time.monotonic() - started)
                return
            except Exception as e:  # not listening yet, or metadata not ready yet
                last_error = e
                time.sleep(0.5)
        self.progress.done()
        raise BrokerError(f"Kafka on {self.bootstrap} did not round-trip a message within "
                          f"{self.settings.startup_timeout:.0f} s (last error: {last_error!r}); "
                          f"log ends with:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        texts = []
        for p in (self.log_path, self.workdir / "logs" / "stdout.log" if self.workdir else None):
            if p is not None and p.exists():
                texts.append("\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL; remove the temporary directory. Idempotent."""
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.settings.stop_timeout)
                log.info("Kafka on %s stopped (exit %s)", self.bootstrap, proc.returncode)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                log.warning("Kafka on %s did not stop within %.0f s of SIGTERM; killed",
                            self.bootstrap, self.settings.stop_timeout)


# --------------------------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elog.broker",
                                description="Run a local Apache Kafka 4.x broker fetched from Maven Central.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("start", "start a broker, print its bootstrap address, run until Ctrl-C/SIGTERM"),
                       ("fetch", "only download the Kafka jars into the cache")):
        c = sub.add_parser(name, help=text, description=text)
        c.add_argument("--kafka-version", help=f"Kafka 4.x version (default {DEFAULT_KAFKA_VERSION})")
        c.add_argument("--cache-dir", type=Path, help="cache root (default $LCLSTREAM_CACHE or ~/.cache/lclstream)")
        c.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        if name == "start":
            c.add_argument("--port", type=int, help="broker port (default: a free one)")
            c.add_argument("--timeout", type=float, help="seconds to wait for the broker to be ready")
    return p


def _settings_from_args(args: argparse.Namespace) -> KafkaBrokerSettings:
    from pydantic import ValidationError

    given = {"kafka_version": args.kafka_version, "cache_root": args.cache_dir,
             "port": getattr(args, "port", None), "startup_timeout": getattr(args, "timeout", None)}
    try:
        return KafkaBrokerSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as e:
        flags = {"kafka_version": "--kafka-version", "cache_root": "--cache-dir", "port": "--port",
                 "startup_timeout": "--timeout"}
        lines = [f"{flags.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}" for err in e.errors()]
        _parser().error("; ".join(lines))
        raise  # unreachable: error() exits 2


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.log_level != "DEBUG":  # kafka-python's own chatter while the broker comes up
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings = _settings_from_args(args)
    try:
        if args.command == "fetch":
            print(fetch_kafka(settings))
            return 0
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up exactly like Ctrl-C
        try:
            with KafkaBroker(settings) as broker:
                print(broker.bootstrap, flush=True)
                while broker.proc is not None and broker.proc.poll() is None:
                    time.sleep(1.0)
                log.error("Kafka exited unexpectedly; log ends with:\n%s", broker._log_tail())
                return 1
        except KeyboardInterrupt:
            log.info("stopped on signal")
            return 0
    except BrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
