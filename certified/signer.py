"""``certified-signer``: hands out user certificates on a login node with zero configuration.

The daemon listens on a UNIX socket. A local user connects and sends one JSON line
``{"public_key": PEM}``; the daemon asks the kernel who is on the other end (``SO_PEERCRED``), signs
the key with its CA under that uid's login name, records the signature (serial, name, uid, pid, time)
in SQLite, and answers one JSON line ``{"ok": true, "introduction": {...}}`` (a certified
``Introduction``) or ``{"ok": false, "error": "..."}``. No password: the kernel vouches for the user.

    certified-signer serve --socket /run/certified/signer.sock [--config DIR] [--db FILE]
    certified-signer request --socket /run/certified/signer.sock [--install]
    certified-signer list [--db FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import signal
import socket
import socketserver
import struct
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from certified import ca
from certified.cli_util import Parser, run, service_pairs
from certified.config import Layout
from certified.errors import CertifiedError
from certified.identity import public_key_pem
from certified.intro import Introduction, add_intro, introduce, parse_introduction
from certified.signer_db import SignatureRecord, record, records

PROG = "certified-signer"
MAX_REQUEST = 64 * 1024
log = logging.getLogger("certified.signer")


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process on the other end of a UNIX socket, from the kernel."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise CertifiedError(f"request longer than {MAX_REQUEST} bytes")
    return data.split(b"\n", 1)[0]


class Signer:
    """Signs public keys for local users with the CA of ``config_dir``."""

    def __init__(self, config_dir: str | Path | None, db_path: Path, days: int,
                 services: dict[str, str] | None = None) -> None:
        self.config_dir = config_dir
        self.db_path = db_path
        self.days = days
        self.services = services or {}

    def handle(self, conn: socket.socket) -> dict[str, object]:
        pid, uid, _gid = peer_credentials(conn)
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            return {"ok": False, "error": f"uid {uid} has no login name on this machine"}
        try:
            request = json.loads(_read_line(conn))
            if not isinstance(request, dict) or not isinstance(request.get("public_key"), str):
                raise CertifiedError('request must be one JSON line {"public_key": "<PEM>"}')
            result = introduce(request["public_key"].encode(), name, self.config_dir, days=self.days,
                               services=self.services)
        except (CertifiedError, ValueError) as exc:
            log.warning(json.dumps({"event": "refused", "uid": uid, "pid": pid, "error": str(exc)}))
            return {"ok": False, "error": str(exc)}
        cert = ca.load_cert(result.certificate.encode())
        entry = SignatureRecord(serial=format(cert.serial_number, "x"), name=name, uid=uid, pid=pid,
                                time=datetime.now(UTC).isoformat(timespec="seconds"),
                                not_after=cert.not_valid_after_utc.isoformat(), fingerprint=ca.fingerprint(cert))
        record(self.db_path, entry)
        log.info(json.dumps({"event": "signed", "name": name, "uid": uid, "pid": pid, "serial": entry.serial}))
        return {"ok": True, "introduction": result.model_dump()}


def _prepare_socket_path(path: Path) -> None:
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale socket from a previous run
        return
    finally:
        probe.close()
    raise CertifiedError(f"another signer is already listening on {path}")


def serve(socket_path: Path, signer: Signer) -> None:
    """Serve until SIGINT/SIGTERM; the socket is world-connectable (0666): the kernel names each caller."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(10)
            try:
                reply = signer.handle(self.request)
                self.request.sendall(json.dumps(reply).encode() + b"\n")
            except OSError as exc:
                log.warning(json.dumps({"event": "connection error", "error": str(exc)}))

    _prepare_socket_path(socket_path)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with socketserver.ThreadingUnixStreamServer(str(socket_path), Handler) as server:
        os.chmod(socket_path, 0o666)

        def stop(_signum: int, _frame: object) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info(json.dumps({"event": "listening", "socket": str(socket_path), "db": str(signer.db_path)}))
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            socket_path.unlink(missing_ok=True)
            log.info(json.dumps({"event": "stopped", "socket": str(socket_path)}))


def request_certificate(socket_path: str | Path, public_pem: bytes, timeout: float = 10.0) -> Introduction:
    """Ask the signer on ``socket_path`` to sign ``public_pem`` for the calling user."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(socket_path))
        conn.sendall(json.dumps({"public_key": public_pem.decode()}).encode() + b"\n")
        line = _read_line(conn)
    except OSError as exc:
        raise CertifiedError(f"cannot talk to the signer at {socket_path}: {exc.strerror or exc}") from exc
    finally:
        conn.close()
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise CertifiedError(f"the signer at {socket_path} answered something that is not JSON") from exc
    if not reply.get("ok"):
        raise CertifiedError(f"the signer refused: {reply.get('error', 'no reason given')}")
    return parse_introduction(json.dumps(reply["introduction"]), "the signer's answer")


def _default_db(config_dir: str | None) -> Path:
    return Layout(config_dir).root / "signer.sqlite"


def cmd_serve(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    Layout(args.config).require_identity()
    db = Path(args.db) if args.db else _default_db(args.config)
    serve(Path(args.socket), Signer(args.config, db, args.days, service_pairs(args.service)))
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    result = request_certificate(args.socket, public_key_pem(args.config), timeout=args.timeout)
    if args.install:
        aliases = add_intro(result, args.config)
        print(f"installed certificate naming you {result.name!r}, signed by {result.signer!r}"
              + (f"; services: {', '.join(aliases)}" if aliases else ""))
    else:
        print(result.model_dump_json(indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = records(Path(args.db) if args.db else _default_db(args.config))
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
        return 0
    for r in rows:
        print(f"{r.time}  {r.name:16} uid {r.uid:<6} serial {r.serial}  until {r.not_after}")
    if not rows:
        print("no certificates signed yet")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = Parser(add_help=False)
    common.add_argument("--config", metavar="DIR", help="configuration directory whose CA signs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("serve", parents=[common], help="run the signing daemon")
    p.add_argument("--socket", required=True, help="UNIX socket path")
    p.add_argument("--db", help="SQLite record (default: CONFIG/signer.sqlite)")
    p.add_argument("--days", type=int, default=30, help="validity of issued certificates (default 30)")
    p.add_argument("--service", action="append", default=[], metavar="ALIAS=URL",
                   help="service alias to include in every introduction (repeatable)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("request", parents=[common], help="ask the signer for a certificate for this identity")
    p.add_argument("--socket", required=True)
    p.add_argument("--install", action="store_true", help="install it (add-intro) instead of printing it")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser("list", parents=[common], help="list every certificate the signer issued")
    p.add_argument("--db", help="SQLite record (default: CONFIG/signer.sqlite)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(f"{PROG} {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
