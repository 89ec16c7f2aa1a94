"""``psik-api``: serve Psik-API over certified mutual TLS.

Logs the configuration's resolved paths at start; request bodies over the config's ``max_body_bytes``
are refused with 413 (``certified.request_guard``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from certified.config import config_dir
from certified.config_paths import absolute, describe_paths
from certified.errors import CertifiedError
from psik.config import CONFIG_ENV, InputError, load_config

log = logging.getLogger("psik.api")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="psik-api", description=__doc__)
    p.add_argument("--config", type=Path, help="Psi-k config (YAML or JSON); default: $PSIK_CONFIG")
    p.add_argument("--prefix", type=Path, help="folder holding the job folders (overrides the config)")
    p.add_argument("--listen", default="https://127.0.0.1:8443", help="https://HOST:PORT (port 0: any free port)")
    p.add_argument("--certified-config", type=Path, help="certified identity directory of this server")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config, args.prefix)
    except InputError as exc:
        exc.report("psik-api")
        return 2
    from certified.serve import serve
    from psik.api import create_app

    identity = absolute(config_dir(args.certified_config))  # --certified-config, $CERTIFIED_CONFIG or default
    source = args.config or os.environ.get(CONFIG_ENV)
    log.info("psik-api: config %s; paths %s certified_config=%s; request bodies up to %d bytes",
             absolute(source) if source else "(defaults)", describe_paths(config),
             identity, config.max_body_bytes)
    try:
        serve(create_app(config), args.listen, identity, log_level=args.log_level, max_body=config.max_body_bytes)
    except CertifiedError as exc:
        print(f"psik-api: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
