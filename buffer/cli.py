"""``nng-stream``: run one buffer from the command line.

Exit codes: 0 done, 1 failed (e.g. idle timeout), 3 canceled (SIGTERM/SIGINT), 2 bad input.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from typing import NoReturn

from pydantic import ValidationError

from buffer.config import CB_SECRET_ENV, BufferConfig, TLSFiles, parse_size
from buffer.engine import Buffer
from buffer.memory import single_arena
from buffer.nng_side import EndpointError
from buffer.status import EXIT_CODES

EXIT_BAD_INPUT = 2

# config field -> command line option, for error messages
_OPTIONS = {
    "recv": "--recv", "send": "--send", "send_zmq": "--send-zmq", "tls": "--cert/--key/--ca",
    "cert": "--cert", "key": "--key", "ca": "--ca", "require_roles": "--require-roles", "max_bytes": "--max-bytes", "max_messages": "--max-messages",
    "max_message_size": "--max-message-size", "direct_wait": "--direct-wait", "producers": "--producers", "idle_timeout": "--idle-timeout",
    "end_timeout": "--end-timeout", "report_interval": "--report-interval", "status_file": "--status-file",
    "callback": "--callback", "cb_secret": "--cb-secret",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"nng-stream: {message} (see nng-stream --help)\n")


def _size(text: str) -> int:
    """Bytes with an optional K/M/G suffix (powers of 1024)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nng-stream", description="FIFO memory buffer between nng producers and consumers.")
    p.add_argument("--recv", required=True, metavar="URL", help="where producers push (listened on unless --recv-dial)")
    p.add_argument("--send", metavar="URL", help="where consumers pull (listened on unless --send-dial)")
    p.add_argument("--send-zmq", metavar="URL", help="bind a ZeroMQ PUSH output here instead of --send")
    p.add_argument("--recv-dial", action="store_true", help="dial --recv (e.g. an upstream buffer's --send)")
    p.add_argument("--send-dial", action="store_true", help="dial --send (e.g. a downstream buffer's --recv)")
    p.add_argument("--cert", help="PEM certificate of this buffer (for tls+tcp:// URLs)")
    p.add_argument("--key", help="PEM private key of this buffer")
    p.add_argument("--ca", help="PEM CA certificate every peer must be signed by")
    p.add_argument("--require-roles", action="store_true",
                   help="admit only producer certificates (OU=producer) on --recv and consumer certificates "
                        "(OU=consumer) on --send, as LCLStream-API makes them for each transfer")
    p.add_argument("--max-bytes", type=_size, default=1 << 30, help="buffered bytes before producers block (1G)")
    p.add_argument("--max-messages", type=int, default=100_000, help="buffered messages before producers block")
    p.add_argument("--max-message-size", type=_size, default=1 << 30,
                   help="largest message accepted; a producer announcing a larger one is disconnected before "
                        "anything is allocated (1G; 0 = no limit)")
    p.add_argument("--direct-wait", type=float, default=0.05, metavar="SECONDS",
                   help="how long a message may wait in its producer's connection for a free consumer, which "
                        "then gets it without the buffer copying it (tcp/ipc URLs on both sides); after that it "
                        "is copied into the buffer's memory (0.05; 0 = always copy)")
    p.add_argument("--producers", type=int, default=0, help="producers to expect before draining may start")
    p.add_argument("--idle-timeout", type=float, help="fail when no producer connects within this many seconds")
    p.add_argument("--end-timeout", type=float, default=30.0, help="seconds for consumers to take the end marker")
    p.add_argument("--report-interval", type=float, default=5.0, help="seconds between status lines")
    p.add_argument("--status-file", help="status JSON, rewritten atomically")
    p.add_argument("--callback", metavar="URL", help="POST each state change here")
    p.add_argument("--cb-secret", default=os.environ.get(CB_SECRET_ENV) or None,
                   help=f"HMAC-SHA256 secret for the x-hub-signature-256 header (default: ${CB_SECRET_ENV}, "
                        "which other users cannot read in the process list)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    return p


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = " ".join(_OPTIONS.get(str(part), str(part)) for part in err["loc"])
    text = err["msg"].removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


def config_from_args(args: argparse.Namespace) -> BufferConfig:
    tls = None
    if args.cert or args.key or args.ca:
        if not (args.cert and args.key and args.ca):
            raise ValueError("--cert, --key and --ca must be given together")
        tls = TLSFiles(cert=args.cert, key=args.key, ca=args.ca)
    return BufferConfig(
        recv=args.recv, send=args.send, send_zmq=args.send_zmq, recv_dial=args.recv_dial, send_dial=args.send_dial,
        tls=tls, require_roles=args.require_roles, max_bytes=args.max_bytes, max_messages=args.max_messages, max_message_size=args.max_message_size,
        direct_wait=args.direct_wait, producers=args.producers, idle_timeout=args.idle_timeout, end_timeout=args.end_timeout,
        report_interval=args.report_interval, status_file=args.status_file, callback=args.callback,
        cb_secret=args.cb_secret,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s nng-stream[%(process)d] %(levelname)s %(message)s")
    single_arena()
    try:
        cfg = config_from_args(args)
        buffer = Buffer(cfg)
    except ValidationError as exc:
        print(f"nng-stream: {_describe(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, EndpointError) as exc:
        print(f"nng-stream: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if cfg.status_file or cfg.tls:
        files = {"status file": cfg.status_file, **(cfg.tls.model_dump() if cfg.tls else {})}
        logging.getLogger("buffer").info("nng-stream: %s", ", ".join(f"{k} {v}" for k, v in files.items() if v))

    def on_signal(signum: int, _frame: object) -> None:
        buffer.cancel(f"{signal.Signals(signum).name} received")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gc.freeze()  # the modules and objects made so far stay: the collector need not scan them per message
    final = buffer.run()
    if final.state.value != "done":
        print(f"nng-stream: {final.state.value}: {final.reason}", file=sys.stderr)
    return EXIT_CODES.get(final.state, 1)


if __name__ == "__main__":
    sys.exit(main())
