"""``lclstream-site up``: the whole system on this machine until Ctrl-C, then every process stopped.

``lclstream-site pki DIR``: only the PKI, for a deployment (``docker-compose.yaml`` runs it once).

``lclstream-site demo``: the whole system and one live run through it (``make demo``; see ``demo.py``).

Prints one line per piece as it comes up, then a short summary (Airflow UI address and login, service
URLs, how to act as a user); ``--json`` prints ``site.json`` instead. Exit 2 on bad arguments, 1 when a
piece fails to start (with the tail of its log), 0 after a clean stop.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from airflow_provider_lclstream.local_site.airflow import AirflowSettings
from airflow_provider_lclstream.local_site.pki import SitePki
from airflow_provider_lclstream.local_site.processes import SiteError, interrupt_on_signal
from airflow_provider_lclstream.local_site.site import SERVICE_IDENTITIES, LocalSite, SiteSettings
from certified.errors import CertifiedError
from elog.broker import BrokerError
from lclstream_api.settings import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lclstream-site", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the site and keep it up until Ctrl-C or SIGTERM")
    up.add_argument("--root", type=Path, help="folder for everything (default: a new temporary folder, removed "
                                              "at the end)")
    up.add_argument("--dags", type=Path, help="DAGs folder (default: an empty one in the site's folder)")
    up.add_argument("--user", action="append", dest="users", metavar="NAME",
                    help="a person with an identity introduced to every service (repeatable; default alice)")
    up.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="use this Kafka broker instead of starting one")
    up.add_argument("--no-kafka", action="store_true", help="no Kafka broker")
    up.add_argument("--no-airflow", action="store_true", help="no Airflow")
    up.add_argument("--no-elog", action="store_true", help="no ELog service")
    up.add_argument("--airflow-password", help="the Airflow UI password (default: a random one, printed)")
    up.add_argument("--json", action="store_true", help="print site.json instead of the summary")
    up.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    sub.add_parser("demo", add_help=False,
                   help="the whole system and one live run through it (make demo; lclstream-site demo --help)")
    pki = sub.add_parser("pki", help="only make the site's PKI in DIR (for a deployment; nothing if DIR has one)")
    pki.add_argument("dir", type=Path, metavar="DIR")
    pki.add_argument("--service", action="append", default=[], metavar="ALIAS=URL", required=True,
                     help=f"a service and the URL users reach it at; ALIAS is one of {', '.join(SERVICE_IDENTITIES)}")
    pki.add_argument("--user", action="append", dest="users", default=[], metavar="NAME", required=True,
                     help="an identity introduced to every service (repeatable), e.g. airflow")
    pki.add_argument("--key-type", default="ed25519", choices=["ed25519", "p256"])
    return parser


def summary(site: LocalSite) -> str:
    d = site.description()
    lines = [f"site up in {d['timings_s'].get('total', 0):.0f} s, everything in {d['root']} (site.json)"]
    if "airflow" in d:
        a = d["airflow"]
        lines.append(f"  Airflow UI    {a['url']}  login {a['username']} / {a['password']}")
        lines.append(f"                AIRFLOW_HOME={a['home']} (DAGs from {a['dags_folder']})")
    for alias, service in d["services"].items():
        lines.append(f"  {alias:<13} {service['url']}  (certified alias {alias!r}, log {service['log']})")
    if d["kafka_bootstrap"]:
        lines.append(f"  Kafka         {d['kafka_bootstrap']}")
    for user, path in d["users"].items():
        lines.append(f"  as {user + ':':<10} export CERTIFIED_CONFIG={path}")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def _invalid(exc: ValidationError, option_prefix: str) -> int:
    """One line per bad option (named as on the command line, with the value given); exit code 2."""
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        option = "--user" if field == "users" else option_prefix + field.replace("_", "-")
        shown = "(hidden)" if "password" in field else repr(err["input"])
        print(f"lclstream-site: {option} {shown}: {err['msg']}", file=sys.stderr)
    return 2


def up(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lclstream-site-") as tmp:
        try:
            airflow = None if args.no_airflow else AirflowSettings(dags_folder=args.dags,
                                                                   password=args.airflow_password)
        except ValidationError as exc:
            return _invalid(exc, "--airflow-")
        try:
            settings = SiteSettings(root=args.root or Path(tmp), users=args.users or ["alice"],
                                    kafka=not args.no_kafka, kafka_bootstrap=args.kafka_bootstrap, airflow=airflow,
                                    elog=not args.no_elog)
        except ValidationError as exc:
            return _invalid(exc, "--")
        site = LocalSite(settings)
        signal.signal(signal.SIGTERM, interrupt_on_signal)
        try:
            with site:
                print(json.dumps(site.description(), indent=2) if args.json else summary(site), flush=True)
                while True:
                    signal.pause()
        except KeyboardInterrupt:
            print("stopped every process of the site", file=sys.stderr)
            return 0
        except (SiteError, BrokerError, SettingsError, CertifiedError) as exc:
            print(f"lclstream-site: {exc}", file=sys.stderr)
            return 1


def make_pki(args: argparse.Namespace) -> int:
    services: dict[str, tuple[str, str]] = {}
    for item in args.service:
        alias, sep, url = item.partition("=")
        if not sep or alias not in SERVICE_IDENTITIES or not url.startswith("https://"):
            print(f"lclstream-site: --service {item!r}: expected ALIAS=https://HOST:PORT with ALIAS one of "
                  f"{', '.join(SERVICE_IDENTITIES)}", file=sys.stderr)
            return 2
        services[alias] = (SERVICE_IDENTITIES[alias], url)
    existing = sorted(p.parent.name for p in args.dir.glob("*/identity.json"))
    if existing:
        print(f"PKI already in {args.dir} ({', '.join(existing)}); nothing changed")
        return 0
    try:
        pki = SitePki.create(args.dir, services, args.users, key_type=args.key_type)
    except CertifiedError as exc:
        print(f"lclstream-site: {exc}", file=sys.stderr)
        return 2
    for alias, (name, url) in services.items():
        print(f"service {name}: {pki.dir(name)} (alias {alias!r} -> {url})")
    for user in pki.users:
        print(f"user {user}: {pki.dir(user)} (introduced to {', '.join(services)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from airflow_provider_lclstream.local_site.demo import main as demo

        return demo(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "pki":
        return make_pki(args)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
