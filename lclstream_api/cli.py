"""``lclstream``: request a transfer from LCLStream-API and receive it anywhere.

    lclstream request cfg.yaml --server ALIAS [--ranks 2 --reader bob ...]   prints the id and the url
    lclstream status ID | list [--state S] | cancel ID
    lclstream pull ID [--server ALIAS] --out DIR   fetches this caller's data credentials, then pulls;
                                                   exit 0 only if every producer's sequence is complete
    lclstream pull URL [--cert C --key K --ca CA]  a stream by its URL, with your own files for tls+tcp
    lclstream pull ID --summary-json -    ... and what was received as one JSON line on stdout (for jobs)
    lclstream get cfg.yaml --out DIR      request + pull (+ cancel on Ctrl-C)

Exit codes: 0 success, 1 incomplete stream or service error, 2 bad input, 3 conflict (an
--idempotency-key already used with another request, a transfer that already ended), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import httpx
from pydantic import ValidationError

from buffer.config import check_nng_url
from lclstream_api.client import TransferAPIError, TransferClient, load_request_config
from lclstream_api.models import TransferOptions, TransferView
from lclstream_api.progress import human_bytes
from lclstream_api.receive import Receiver, pull
from lclstream_api.transport import DataTLS, Security, open_transfer, unprotected_warning
from streamer.cli import int_at_least

EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_INTERRUPTED = 1, 2, 3, 130


class UsageError(Exception):
    """Bad input from the user: exit 2 with this one message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"lclstream: {message} (see lclstream --help)\n")


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("LCLSTREAM_SERVER", "lclstream"),
                   help="certified service alias or https URL of LCLStream-API ($LCLSTREAM_SERVER)")
    p.add_argument("--certified-config", default=None, help="certified config directory of your identity")


def _option_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks of the producers")
    p.add_argument("--backend", default="default", help="Psi-k backend the producers run on")
    p.add_argument("--max-bytes", type=int, default=256 * 2**20, help="buffer memory limit in bytes")
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="seconds the service waits for the first producer / consumer")
    p.add_argument("--total-timeout", type=float, default=None, help="seconds after which the transfer fails")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True,
                   help="protect the data stream: tls+tcp with certificates made for this transfer (default); "
                        "--no-tls asks for plain tcp, which only services on a trusted network allow")
    p.add_argument("--reader", action="append", default=[], metavar="IDENTITY",
                   help="another identity that may pull this transfer's data (repeat for several)")
    p.add_argument("--idempotency-key", default=None,
                   help="the same key and request again return the same transfer; another request exits 3")


def _receive_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="directory for one file per message")
    p.add_argument("--wait", type=float, default=120.0, help="give up after this many seconds without data")
    p.add_argument("--connections", type=int_at_least(1), default=1,
                   help="parallel connections to the buffer (2 keeps large messages flowing back to back)")
    p.add_argument("--shared", action="store_true",
                   help="other consumers share this stream: exit 0 at a clean end even if this one saw a part")
    p.add_argument("--summary-json", metavar="FILE", default=None,
                   help="also write what was received as one JSON object (messages, events, bytes, complete, "
                        "gaps, first and last message time) to FILE; '-': one line on standard output")
    p.add_argument("--cert", help="p256 certificate for a tls+tcp stream pulled by URL")
    p.add_argument("--key", help="private key for a tls+tcp stream pulled by URL")
    p.add_argument("--ca", help="CA certificate for a tls+tcp stream pulled by URL")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lclstream", description="Request facility data through LCLStream-API and receive it.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("request", help="request a transfer; prints its id and url")
    p.add_argument("config", help="streamer config (YAML or JSON)")
    _server_args(p)
    _option_args(p)
    p = sub.add_parser("status", help="show a transfer's record")
    p.add_argument("id")
    _server_args(p)
    p = sub.add_parser("list", help="list your transfers")
    p.add_argument("--state", default=None)
    _server_args(p)
    p = sub.add_parser("cancel", help="cancel a transfer")
    p.add_argument("id")
    _server_args(p)
    p = sub.add_parser("pull", help="receive a transfer's stream, by transfer id or by url")
    p.add_argument("target", metavar="ID|URL",
                   help="a transfer id (your data credentials are fetched from --server) or a stream url")
    _server_args(p)
    _receive_args(p)
    p = sub.add_parser("get", help="request a transfer and receive it (Ctrl-C cancels it)")
    p.add_argument("config")
    _server_args(p)
    _option_args(p)
    _receive_args(p)
    return parser


def _options(args: argparse.Namespace) -> TransferOptions:
    try:
        return TransferOptions(ranks=args.ranks, backend=args.backend, max_bytes=args.max_bytes,
                               idle_timeout=args.idle_timeout, total_timeout=args.total_timeout, tls=args.tls,
                               readers=args.reader)
    except ValidationError as exc:
        err = exc.errors()[0]
        option = {"readers": "reader"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise UsageError(f"--{option.replace('_', '-')}: {err['msg']}") from None


def _tls(args: argparse.Namespace) -> DataTLS | None:
    given = [args.cert, args.key, args.ca]
    if not any(given):
        return None
    if not all(given):
        raise UsageError("--cert, --key and --ca go together for a tls+tcp stream")
    try:
        return DataTLS(cert=args.cert, key=args.key, ca=args.ca)
    except ValidationError as exc:
        raise UsageError(exc.errors()[0]["msg"]) from None


def _client(args: argparse.Namespace) -> TransferClient:
    try:
        return TransferClient(args.server, args.certified_config)
    except Exception as exc:  # unknown alias, missing identity: the user's setup, said in one line
        raise UsageError(f"--server {args.server}: {exc}") from None


def _config(path: str) -> dict:
    try:
        return load_request_config(path)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _print_view(view: TransferView) -> None:
    print(json.dumps(view.model_dump(mode="json"), indent=2))


def _write_summary(summary: dict, target: str | None, transfer_id: str | None) -> None:
    if target is None:
        return
    text = json.dumps({"transfer_id": transfer_id, **summary}, separators=(",", ":"))
    if target == "-":
        print(text, flush=True)
    else:
        Path(target).write_text(text + "\n")


def _report(receiver: Receiver, shared: bool, summary_json: str | None = None,
            transfer_id: str | None = None) -> int:
    summary = receiver.summary()
    _write_summary(summary, summary_json, transfer_id)
    markers = summary["end_markers"]  # the producer ranks whose end-of-rank marker arrived
    print(f"received {summary['messages']} data messages and {markers} end-of-rank marker{'s' * (markers != 1)} "
          f"(a buffer counts both: {summary['messages'] + markers} messages), {summary['events']} events, "
          f"{human_bytes(summary['bytes'])} from {receiver.url}", file=sys.stderr)
    if receiver.complete():
        print("complete: every producer's sequence received", file=sys.stderr)
        return 0
    if shared and receiver.ended and not receiver.ledger.duplicates:
        print("end of stream reached (shared stream: this consumer received part of it)", file=sys.stderr)
        return 0
    if receiver.timed_out:
        print(f"stopped: nothing arrived for {receiver.idle_timeout:g} s", file=sys.stderr)
    print("INCOMPLETE:", file=sys.stderr)
    for line in receiver.ledger.describe_gaps() or ["no producer's end of stream was received"]:
        print(f"  {line}", file=sys.stderr)
    return EXIT_INCOMPLETE


def _by_id(api: TransferClient, transfer_id: str) -> tuple[str, Security]:
    """The url and TLS context of a transfer, from this caller's data credentials."""
    creds, context = open_transfer(transfer_id, api)
    if not creds.protected:
        print(f"lclstream: {unprotected_warning(creds.transfer_id, creds.url)}", file=sys.stderr)
    return creds.url, context


def _pull(args: argparse.Namespace) -> int:
    target = args.target
    if "://" not in target:
        if any([args.cert, args.key, args.ca]):
            raise UsageError("--cert, --key and --ca go with a stream URL; a transfer id brings its own credentials")
        with _client(args) as api:
            url, tls = _by_id(api, target)
    else:
        try:
            check_nng_url(target)
        except ValueError as exc:
            raise UsageError(f"URL {target!r}: {exc}") from None
        if target.startswith("tls+tcp://") and not args.cert:
            raise UsageError(f"{target} is a TLS stream: give --cert, --key and --ca, or pull it by transfer id")
        url, tls = target, _tls(args)
    receiver = pull(url, args.out, idle_timeout=args.wait, tls=tls, interruptible=True,
                    connections=args.connections)
    return _report(receiver, args.shared, args.summary_json, None if "://" in target else target)


def _run(args: argparse.Namespace) -> int:
    if args.command == "pull":
        return _pull(args)
    if args.command in ("request", "get"):
        config = _config(args.config)
        options = _options(args)
        if args.command == "get" and any([args.cert, args.key, args.ca]):
            raise UsageError("--cert, --key and --ca go with lclstream pull URL; get uses the transfer's credentials")
        with _client(args) as api:
            view = api.request(config, options, idempotency_key=args.idempotency_key)
            if args.command == "request":
                print(f"{view.id} {view.url}")
                if not view.protected:
                    print(f"lclstream: {unprotected_warning(view.id, view.url)}", file=sys.stderr)
                return 0
            try:  # from here on, Ctrl-C cancels the transfer
                print(f"{view.id} {view.url}", flush=True)
                url, tls = _by_id(api, view.id)
                receiver = pull(url, args.out, idle_timeout=args.wait, tls=tls, interruptible=True,
                                connections=args.connections)
            except KeyboardInterrupt:
                api.cancel(view.id)
                print(f"interrupted: transfer {view.id} canceled", file=sys.stderr)
                return EXIT_INTERRUPTED
            code = _report(receiver, args.shared, args.summary_json, view.id)
            print(f"transfer {view.id}: {api.status(view.id).state}", file=sys.stderr)
            return code
    with _client(args) as api:
        if args.command == "status":
            _print_view(api.status(args.id))
        elif args.command == "cancel":
            _print_view(api.cancel(args.id))
        elif args.command == "list":
            for view in api.list(args.state):
                print(f"{view.id}  {view.state.value:<10} {view.owner:<16} {view.url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as exc:
        print(f"lclstream: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TransferAPIError as exc:
        print(f"lclstream: {exc}", file=sys.stderr)
        if exc.status == 409:
            return EXIT_CONFLICT
        return EXIT_BAD_INPUT if exc.status in (400, 413, 422) else 1
    except KeyboardInterrupt:
        print("lclstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, httpx.HTTPError) as exc:  # connection or TLS handshake refused, unreadable file
        print(f"lclstream: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
