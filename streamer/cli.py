"""``lclstreamer``: run a streamer config (``-c cfg.yaml``), print its JSON Schema, or validate a file.

    lclstreamer -c cfg.yaml [--num-events N] [--log-level L] [--summary-json PATH]
    lclstreamer schema
    lclstreamer validate cfg.yaml

Under ``mpiexec -n N`` every rank runs the same command. Invalid input exits 2 with a clear message and no
traceback; a stream that could not be delivered (no receiver, or one that went away) or that started and then
failed (a live run gone idle) exits 1 the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from streamer.config import ConfigError, config_schema, describe, load_config
from streamer.sources.errors import SourceError, SourceTimeout

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lclstreamer",
        description="Stream events: source -> processing -> serializer -> data handlers (MPI-parallel). "
                    "Other commands: 'lclstreamer schema', 'lclstreamer validate CONFIG'.")
    parser.add_argument("-c", "--config", required=True, type=Path, help="streamer config (YAML or JSON)")
    parser.add_argument("--num-events", type=int_at_least(0), default=None,
                        help="stream at most this many events (of the whole run, before splitting)")
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS)
    parser.add_argument("--summary-json", type=Path, default=None, help="rank 0 also writes the summary here")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show progress even when stderr is not a terminal")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``, else one clear sentence."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"lclstreamer: error: {message}", file=sys.stderr)
    return code


def cmd_schema(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="lclstreamer schema", description="print the config JSON Schema").parse_args(argv)
    print(json.dumps(config_schema(), indent=2))
    return 0


def cmd_validate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lclstreamer validate", description="check streamer config files")
    parser.add_argument("configs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = 0
    for path in args.configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            status = _fail(exc.describe())
            continue
        print(f"{path}: valid: {describe(config)}")
    return status


def cmd_run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    from streamer.mpi import rank_and_size, world_communicator

    comm = world_communicator()
    rank, nranks = rank_and_size(comm)
    prefix = f"rank {rank}: " if nranks > 1 else ""
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(exc.describe()) if rank == 0 else EXIT_BAD_INPUT
    from streamer.base import DeliveryError
    from streamer.runner import SetupError, error_text, run_streamer

    try:
        summary = run_streamer(config, num_events=args.num_events, comm=comm, progress=args.progress)
    # no receiver, or one that went away; or the stream started and then its source stopped delivering:
    # the stream is incomplete, and not because of bad input
    except (DeliveryError, SourceTimeout) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except (SourceError, ConfigError, SetupError, OSError) as exc:  # OSError: a handler cannot write/bind/connect
        return _fail(error_text(exc)) if rank == 0 else EXIT_BAD_INPUT
    if summary is not None:
        print(summary.to_text(), flush=True)
        if args.summary_json is not None:
            args.summary_json.write_text(summary.model_dump_json(indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"schema": cmd_schema, "validate": cmd_validate}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return cmd_run(argv)
    except BrokenPipeError:  # e.g. `lclstreamer schema | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("lclstreamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
