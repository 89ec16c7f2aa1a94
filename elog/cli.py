"""``lclstream-elog``: the ELog service, its client commands, and the DAQ that takes runs.

    lclstream-elog serve --config elog.yaml
    lclstream-elog runs [--experiment E] [--state open|closed] [--json]
    lclstream-elog show EXP RUN [--json]
    lclstream-elog annotate EXP RUN --text "..." [--json FILE]
    lclstream-elog run --instrument MFX --experiment mfxp1001121 --duration 30 --rate 120 --detector jungfrau4M
    lclstream-elog start --instrument MFX --experiment mfxp1001121 [--detector D]   (prints the run number)
    lclstream-elog stop EXP RUN

Records live in the ELog service named by ``--elog URL|ALIAS`` (``$LCLSTREAM_ELOG``), or without it in
the local SQLite file ``--records`` (default ``DATA_ROOT/elog.sqlite``). Run events go to Kafka
(``--bootstrap``, default ``$LCLSTREAM_KAFKA_BOOTSTRAP``; ``--no-kafka`` publishes none). Human summaries
by default, ``--json`` for programs. Exit codes: 0 done (a run ended by Ctrl-C or SIGTERM is done: its
files, record and run_stop are complete), 1 a service or broker error, 2 bad input (one line, no
traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ValidationError

from certified.cli_util import Parser, read_input
from certified.config import config_dir
from certified.config_paths import absolute, describe_paths
from certified.errors import CertifiedError
from elog.client import ElogClient, ElogError, LocalElog, RunRecords
from elog.events import WIRE_FORMATS
from elog.publisher import DEFAULT_TOPIC, PublishError, RunEventPublisher, default_bootstrap
from elog.records import RunOpen, RunRecord, RunState
from elog.settings import SettingsError, load_settings
from streamer.run_dir import ManifestError

if TYPE_CHECKING:
    from elog.daq import StopFlag

PROG = "lclstream-elog"
ELOG_ENV = "LCLSTREAM_ELOG"
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
log = logging.getLogger("elog")


class UsageError(Exception):
    """Bad input: exit 2 with this one line."""


# -- options ---------------------------------------------------------------------------------------------
def _records_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--elog", default=os.environ.get(ELOG_ENV) or None,
                   help=f"ELog service: certified alias or https URL (${ELOG_ENV}); default: a local file")
    p.add_argument("--certified-config", default=None, help="certified identity directory (default $CERTIFIED_CONFIG)")
    p.add_argument("--data-root", type=Path, default=Path("runs"), help="where run directories go (default ./runs)")
    p.add_argument("--records", type=Path, default=None,
                   help="local run records without --elog (default DATA_ROOT/elog.sqlite)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])


def _kafka_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", default=default_bootstrap(),
                   help="Kafka bootstrap HOST:PORT (default $LCLSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"topic of the run events (default {DEFAULT_TOPIC})")
    p.add_argument("--format", default="lclstream", choices=WIRE_FORMATS,
                   help="run event form: this project's run_start/run_stop, or LCLS eLog Create/Update")
    p.add_argument("--kafka-timeout", type=float, default=30.0,
                   help="seconds to reach the broker and to wait for each acknowledgement (default 30)")
    p.add_argument("--no-kafka", action="store_true", help="publish no run events")


def _run_open_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instrument", required=True, help="instrument (hutch), e.g. MFX")
    p.add_argument("--experiment", required=True, help="experiment name, e.g. mfxp1001121")
    p.add_argument("--run", type=int, default=None, help="run number (default: the experiment's next)")
    p.add_argument("--detector", action="append", default=[], dest="detectors",
                   help="a detector of the run (repeat for several): jungfrau4M, epix10k2M")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a run parameter (VALUE read as JSON when it is JSON); repeatable")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _run_ref_args(p: argparse.ArgumentParser, json_output: bool = True) -> None:
    p.add_argument("experiment", help="experiment name, e.g. mfxp1001121")
    p.add_argument("run", help="run number")
    if json_output:
        p.add_argument("--json", action="store_true", help="print the record as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="ELog/ARP stand-in: run records, a DAQ taking runs, Kafka run events.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("serve", help="serve the ELog API under mutual TLS")
    p.add_argument("--config", required=True, type=Path, help="service config (YAML)")
    p.add_argument("--listen", default=None, help="https://HOST:PORT, overrides the config (port 0: any)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("runs", help="list runs, newest first")
    p.add_argument("--experiment", default=None)
    p.add_argument("--state", default=None, choices=[s.value for s in RunState])
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    _records_args(p)

    p = sub.add_parser("show", help="show one run and its annotations")
    _run_ref_args(p)
    _records_args(p)

    p = sub.add_parser("annotate", help="annotate a run (you are the author)")
    _run_ref_args(p, json_output=False)
    p.add_argument("--text", required=True, help="the note")
    p.add_argument("--json", dest="body", default=None, metavar="FILE",
                   help="a JSON object to attach, e.g. a transfer summary ('-': standard input)")
    _records_args(p)

    p = sub.add_parser("run", help="take a run: open it, write its files at a rate, close it")
    _run_open_args(p)
    p.add_argument("--rate", type=float, default=120.0, help="events per second (default 120)")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--events", type=int, default=None, help="number of events (instead of --duration)")
    p.add_argument("--events-per-file", type=int, default=1000, help="roll over after this many (default 1000)")
    p.add_argument("--compression", default="bitshuffle_lz4", help="none, gzip, lzf, bitshuffle_lz4 (default), zstd")
    p.add_argument("--shape", default=None, metavar="P,H,W", help="detector shape (panels,height,width), e.g. 1,64,64")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument("--start-delay", type=float, default=0.0,
                   help="seconds between run_start and the first event, as a DAQ configuring (default 0)")
    progress = p.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show progress even when stderr is not a terminal")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    _records_args(p)
    _kafka_args(p)

    p = sub.add_parser("start", help="open a run by hand and publish run_start (prints the run number)")
    _run_open_args(p)
    _records_args(p)
    _kafka_args(p)

    p = sub.add_parser("stop", help="close a run by hand and publish run_stop")
    _run_ref_args(p)
    _records_args(p)
    _kafka_args(p)
    return parser


# -- helpers ---------------------------------------------------------------------------------------------
def _field_message(exc: ValidationError, options: dict[str, str]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    where = options.get(loc[0], loc[0]) if loc else "(input)"
    if where.startswith("--"):  # an option: the value's position in a repeated option says nothing
        loc = loc[:1]
    where = ".".join([where, *loc[1:]])
    msg = {"missing": "required", "extra_forbidden": "not allowed"}.get(err["type"], err["msg"])
    return f"{where}: {msg}"


def _run_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"RUN must be a run number, got {text!r}") from None
    if value < 0:
        raise UsageError(f"RUN must be 0 or more, got {value}")
    return value


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r} must look like KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _open_request(args: argparse.Namespace) -> RunOpen:
    try:
        return RunOpen(instrument=args.instrument, experiment=args.experiment, run=args.run,
                       detectors=args.detectors, params=_params(args.param),
                       data_root=str(args.data_root.expanduser().absolute()))
    except ValidationError as exc:
        raise UsageError(_field_message(exc, {"instrument": "--instrument", "experiment": "--experiment",
                                              "run": "--run", "detectors": "--detector"})) from None


def _records(args: argparse.Namespace) -> RunRecords:
    if args.elog:
        try:
            return ElogClient(args.elog, args.certified_config)
        except (CertifiedError, ValueError, OSError) as exc:
            raise UsageError(f"--elog {args.elog}: {exc}") from None
    path = args.records or args.data_root / "elog.sqlite"
    return LocalElog(path.expanduser())


def _publisher(args: argparse.Namespace) -> RunEventPublisher | None:
    if args.no_kafka:
        return None
    if not args.bootstrap:
        raise UsageError("no Kafka broker: give --bootstrap HOST:PORT or set LCLSTREAM_KAFKA_BOOTSTRAP "
                         "(or --no-kafka to publish no run events)")
    if not 0 < args.kafka_timeout <= 3600:
        raise UsageError(f"--kafka-timeout must be more than 0 and at most 3600 s, got {args.kafka_timeout:g}")
    return RunEventPublisher(args.bootstrap, args.topic, args.format, args.kafka_timeout)


@contextmanager
def _records_and_events(args: argparse.Namespace) -> Iterator[tuple[RunRecords, RunEventPublisher | None]]:
    """Where the run records and run events go; the broker is reached first, so an unreachable one
    opens nothing. Both are closed at the end."""
    publisher = _publisher(args)
    try:
        records = _records(args)
        try:
            yield records, publisher
        finally:
            records.close()
    finally:
        if publisher is not None:
            publisher.close()


def _print(args: argparse.Namespace, model: BaseModel, text: str) -> None:
    print(model.model_dump_json(indent=2) if getattr(args, "json", False) else text)


def _show_text(record: RunRecord) -> str:
    lines = [record.summary()]
    if record.run_dir:
        lines.append(f"  run_dir    {record.run_dir}")
    if record.detectors:
        lines.append(f"  detectors  {', '.join(record.detectors)}")
    if record.params:
        lines.append(f"  params     {json.dumps(record.params)}")
    for path in record.files:
        lines.append(f"  file       {path}")
    for note in record.annotations:
        extra = " (+JSON)" if note.body else ""
        lines.append(f"  [{note.id}] {note.time:%Y-%m-%d %H:%M:%S} {note.author}: {note.text}{extra}")
    return "\n".join(lines)


def _body(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(read_input(path, "--json"))
    except CertifiedError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"--json {path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--json {path}: must hold a JSON object, got {type(data).__name__}")
    return data


# -- commands --------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {"listen": args.listen} if args.listen else None
    try:
        settings = load_settings(args.config, overrides)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    from certified.serve import serve
    from elog.app import create_app
    from elog.store import RunStore

    identity = absolute(config_dir(settings.certified_config))  # the config's, $CERTIFIED_CONFIG or default
    log.info("lclstream-elog: config %s; paths %s certified_config=%s; writers %s; request bodies up to %d bytes",
             absolute(args.config), describe_paths(settings), identity, ", ".join(settings.writers) or "none",
             settings.max_body_bytes)
    try:
        store = RunStore(settings.database)
    except Exception as exc:  # sqlite3.Error, OSError: an unusable database file
        raise UsageError(f"database {settings.database}: {exc}") from None
    try:
        serve(create_app(store, settings.writers), settings.listen, identity, log_level=args.log_level,
              max_body=settings.max_body_bytes)
    except CertifiedError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {args.limit}")
    records = _records(args)
    try:
        runs = records.runs(args.experiment, args.state, args.limit)
    finally:
        records.close()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
    else:
        for record in runs:
            print(record.summary())
        if not runs:
            print("no runs", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run = _run_number(args.run)
    records = _records(args)
    try:
        record = records.get(args.experiment, run)
    finally:
        records.close()
    _print(args, record, _show_text(record))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    run = _run_number(args.run)
    body = _body(args.body)
    records = _records(args)
    try:
        note = records.annotate(args.experiment, run, args.text, body)
    finally:
        records.close()
    print(f"annotation {note.id} on {args.experiment}/{run} by {note.author}")
    return 0


def _stop_on_signals() -> StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM end the run cleanly: the handler only sets the flag (no lock, no I/O)."""
    from elog.daq import StopFlag

    stop = StopFlag()

    def handler(signum: int, _frame: Any) -> None:
        stop.set(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    from elog.daq import Daq, DaqSettings, begin_run, end_run

    try:
        shape = tuple(int(x) for x in args.shape.split(",")) if args.shape else None
    except ValueError:
        raise UsageError(f"--shape {args.shape!r} must look like PANELS,HEIGHT,WIDTH, e.g. 1,64,64") from None
    try:
        settings = DaqSettings(detectors=args.detectors, shape=shape, rate=args.rate, duration=args.duration,
                               events=args.events, events_per_file=args.events_per_file,
                               compression=args.compression, seed=args.seed, start_delay=args.start_delay)
    except ValidationError as exc:
        options = {name: "--" + name.replace("_", "-") for name in DaqSettings.model_fields}
        raise UsageError(_field_message(exc, {**options, "detectors": "--detector"})) from None
    request = _open_request(args)
    stop = _stop_on_signals()
    with _records_and_events(args) as (records, publisher):
        daq: list[Daq] = []
        record = begin_run(records, publisher, request,
                           prepare=lambda rec: daq.append(Daq(rec, settings, stop, args.progress)))
        files, count, elapsed = daq[0].take_data()
        closed = end_run(records, publisher, record, files, count)
        result = daq[0].result(closed, elapsed)
    _print(args, result, result.to_text())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from elog.daq import begin_run

    request = _open_request(args)
    with _records_and_events(args) as (records, publisher):
        record = begin_run(records, publisher, request)
    _print(args, record, f"{record.run}\nrun {record.key} open, run_dir {record.run_dir}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from elog.daq import close_run_dir, end_run

    run = _run_number(args.run)
    with _records_and_events(args) as (records, publisher):
        record = records.get(args.experiment, run)
        if record.state == RunState.CLOSED:
            raise ElogError(409, f"run {record.key} is closed already")
        files, count = close_run_dir(Path(record.run_dir)) if record.run_dir else ([], 0)
        closed = end_run(records, publisher, record, files, count)
    _print(args, closed, closed.summary())
    return 0


COMMANDS = {"serve": cmd_serve, "runs": cmd_runs, "show": cmd_show, "annotate": cmd_annotate, "run": cmd_run,
            "start": cmd_start, "stop": cmd_stop}
QUIET_COMMANDS = ("runs", "show", "annotate")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or ("warning" if args.command in QUIET_COMMANDS else "info")
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ElogError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.status in (400, 422) else EXIT_FAILED
    except (PublishError, ManifestError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (OSError, httpx.HTTPError, ValueError) as exc:  # TLS refused, service down, unwritable data root
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
