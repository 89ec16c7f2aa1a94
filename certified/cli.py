"""The ``certified`` command: identities, trust lists, introductions, a TLS server and a curl-like client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from certified import identity, intro, names, trust
from certified.cli_util import Parser, read_input, run, service_pairs
from certified.config import Layout
from certified.keys import KEY_TYPES

PROG = "certified"


def cmd_init(args: argparse.Namespace) -> int:
    ident = identity.init(args.name, args.config, org=args.org, key_type=args.key_type, hosts=args.host or None)
    layout = Layout(args.config)
    print(f"created {ident.key_type} identity {ident.name!r} in {layout.root}")
    print(f"  give {layout.ca_cert} to peers that should trust you (add-service / add-client)")
    print(f"  give {layout.id_cert} to a CA that should introduce you (introduce)")
    return 0


def cmd_add_service(args: argparse.Namespace) -> int:
    trust.add_service(args.alias, args.url, read_input(args.cert, "certificate"), args.config)
    print(f"service {args.alias!r} -> {trust.check_url(args.url)}")
    return 0


def cmd_add_client(args: argparse.Namespace) -> int:
    trust.add_client(args.name, read_input(args.cert, "certificate"), args.config)
    print(f"clients signed by {args.name!r} are now trusted, for the names {names.scope(args.name)} only")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    info = trust.listing(args.config)
    if args.json:
        print(info.model_dump_json(indent=2))
        return 0
    print(f"{info.name} ({info.key_type}) in {info.config_dir}, valid until {info.id_not_after}")
    print(f"  hosts: {', '.join(info.hosts) or '-'}")
    print("known servers:" if info.services else "known servers: none")
    for s in info.services:
        via = f" as {s.identity}" if s.identity else ""
        print(f"  {s.name:16} {s.url}  CA {s.subject}{via}")
    print("known clients:" if info.clients else "known clients: none")
    for c in info.clients:
        print(f"  {c.name:16} {c.subject}  sha256 {c.fingerprint[:16]}  vouches for {c.vouches_for}")
    print("introductions:" if info.intros else "introductions: none")
    for i in info.intros:
        print(f"  {i.name:16} {i.subject}  until {i.not_after}")
    return 0


def cmd_introduce(args: argparse.Namespace) -> int:
    result = intro.introduce(read_input(args.key, "key"), args.name, args.config, days=args.days,
                             services=service_pairs(args.service), hosts=args.host)
    text = result.model_dump_json(indent=2) + "\n"
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_add_intro(args: argparse.Namespace) -> int:
    introduction = intro.parse_introduction(read_input(args.file, "introduction").decode(errors="replace"),
                                            f"introduction {args.file!r}")
    aliases = intro.add_intro(introduction, args.config)
    print(f"installed introduction by {introduction.signer!r} naming you {introduction.name!r}")
    for alias in aliases:
        print(f"  service {alias!r} -> {introduction.services[alias]}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from certified.serve import serve

    sys.path.insert(0, os.path.abspath(args.app_dir))
    serve(args.app, args.url, args.config, log_level=args.log_level)
    return 0


def cmd_message(args: argparse.Namespace) -> int:
    from certified.message import build_request, send

    request = build_request(args.target, args.method, args.data, args.json, args.header)
    return send(request, args.config, timeout=args.timeout)


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__)
    common = Parser(add_help=False)
    common.add_argument("--config", metavar="DIR",
                        help="configuration directory (default: $CERTIFIED_CONFIG, $VIRTUAL_ENV/etc/certified, "
                             "~/.config/certified)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> Parser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "create this identity: its own CA and a certificate signed by it")
    p.add_argument("name")
    p.add_argument("--org")
    p.add_argument("--key-type", choices=KEY_TYPES, default="ed25519",
                   help="ed25519 (default) or p256 (needed for nng's TLS data streams)")
    p.add_argument("--host", action="append", default=[],
                   help="DNS name or IP this identity serves under (repeatable; default: localhost, loopback, hostname)")

    p = add("add-service", cmd_add_service, "trust CERT (a CA certificate) for the server at URL, called ALIAS")
    p.add_argument("alias")
    p.add_argument("url")
    p.add_argument("cert")

    p = add("add-client", cmd_add_client, "trust CERT (a CA certificate) to sign clients that call our servers, "
            "for the name NAME and names NAME/... only")
    p.add_argument("name")
    p.add_argument("cert")

    p = add("list", cmd_list, "show this identity and its trust lists")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("introduce", cmd_introduce, "sign another party's public key (CSR, certificate or public key PEM)")
    p.add_argument("key", metavar="CSR_OR_PUBKEY", help="PEM file, or - for standard input")
    p.add_argument("--name", required=True, help="name to put in the certificate")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--service", action="append", default=[], metavar="ALIAS=URL",
                   help="service alias the introduced party may use (repeatable)")
    p.add_argument("--host", action="append", default=[], help="host name for the certificate (repeatable)")
    p.add_argument("-o", "--output", help="write the JSON here instead of standard output")

    p = add("add-intro", cmd_add_intro, "install an introduction produced by `certified introduce`")
    p.add_argument("file", help="introduction JSON file, or - for standard input")

    p = add("serve", cmd_serve, "serve an ASGI app with mutual TLS 1.3")
    p.add_argument("app", metavar="APP_IMPORT_PATH", help="e.g. mypkg.api:app")
    p.add_argument("url", help="https://HOST:PORT (port 0 picks a free port)")
    p.add_argument("--app-dir", default=".", help="directory to import the app from (default: current)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    p = add("message", cmd_message, "send an HTTPS request as this identity, like curl")
    p.add_argument("target", metavar="ALIAS_OR_URL/path")
    p.add_argument("data", nargs="?", help="request body (sent as JSON when it parses as JSON)")
    p.add_argument("-X", "--request", dest="method", help="HTTP method (default GET, POST with a body)")
    p.add_argument("--json", metavar="FILE", help="send this JSON file (- for standard input)")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    # argparse binds an optional positional (message DATA) only when it directly follows the target,
    # so `certified message api/x -X PUT DATA` leaves DATA over: take it as the body.
    if args.command == "message" and args.data is None and len(extras) == 1 and not extras[0].startswith("-"):
        args.data, extras = extras[0], []
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return run(f"{PROG} {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
