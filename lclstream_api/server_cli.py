"""``lclstream-api --config service.yaml``: serve LCLStream-API under certified mutual TLS.

Also starts the loopback-only plain-HTTP callback listener (``callback_listen``) in a thread, and
the reconciliation thread that resumes tracking of transfers left running by a previous instance.
Each listener logs ``{"event": "listening", "url": ..., "pid": ...}`` once it accepts connections,
with the real port when the config asks for port 0; supervisors (the demo, the tests) wait for those
lines rather than probing a port that another process may have taken meanwhile. Both listeners
refuse bodies over ``max_body_bytes`` (413) and NaN/Infinity (422) through ``certified.request_guard``.
The first log line names the config file and every resolved path.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading

import uvicorn

from certified.config_paths import absolute, describe_paths
from certified.request_guard import RequestGuard
from certified.serve import AnnouncingServer, listening_line
from lclstream_api.app import create_app, create_callback_app
from lclstream_api.jobs import PsikLauncher
from lclstream_api.manager import TransferManager
from lclstream_api.settings import ServiceConfig, SettingsError, load_settings, split_listen

log = logging.getLogger("lclstream_api")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lclstream-api", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", required=True, help="service config YAML file")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


class CallbackListener:
    """uvicorn serving the callback app on a loopback address, in a background thread."""

    def __init__(self, settings: ServiceConfig, manager: TransferManager) -> None:
        host, port = split_listen(settings.callback_listen, "http")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise SettingsError(f"callback_listen: cannot listen on {host}:{port}: {exc.strerror}") from None
        if port == 0:  # the kernel chose: jobs must call back on the real port
            settings.callback_listen = f"http://{host}:{self.sock.getsockname()[1]}"
        app = RequestGuard(create_callback_app(manager), settings.max_body_bytes)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        url = settings.callback_listen
        self.server = AnnouncingServer(config, lambda: log.info(listening_line(url, role="callbacks")))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="callback-listener", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"lclstream-api: {exc}", file=sys.stderr)
        return 2
    from certified.config import config_dir
    from certified.errors import CertifiedError
    from certified.serve import serve

    log.info("lclstream-api: config %s; paths %s (identity %s); commands nng_stream=%s lclstreamer=%s; "
             "request bodies up to %d bytes", absolute(args.config), describe_paths(settings),
             absolute(config_dir(settings.certified_config)), settings.commands.nng_stream,
             settings.commands.lclstreamer, settings.max_body_bytes)
    manager = TransferManager(settings, PsikLauncher(settings.psik_config()))
    try:
        callbacks = CallbackListener(settings, manager)
    except SettingsError as exc:
        print(f"lclstream-api: {exc}", file=sys.stderr)
        return 2
    callbacks.start()
    manager.start()
    log.info("lclstream-api: callbacks on %s, API on %s", settings.callback_listen, settings.listen)
    try:
        serve(create_app(manager), settings.listen, settings.certified_config, log_level=args.log_level,
              max_body=settings.max_body_bytes)
    except CertifiedError as exc:
        print(f"lclstream-api: {exc}", file=sys.stderr)
        return 2
    finally:
        manager.stop()
        callbacks.stop()
        manager.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
