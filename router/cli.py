"""``sora-proxy serve | check | simulate | hash-key``: the command line, loop choice, exit codes.

Exit codes: 0 fine, 1 the config has problems (each printed by dotted path), 2 bad usage (for
``hash-key``, also an unusable key; for ``serve --workers`` above 1, a store that workers cannot
share), 3 the listen address cannot be taken (``serve``, checked before anything starts: one
line, no traceback). ``serve --workers N`` runs N worker processes on one port under a
supervisor (``router.runtime.supervisor``).
``--log-level`` and ``--log-format`` go before or after the command. uvloop is used when
installed; the loop is chosen here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import hashlib
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from importlib.metadata import version
from pathlib import Path

from providers.simulator.settings import SimulationSettings
from router.config.load import load_config
from router.config.model import Config, ConfigError
from router.logs import FORMATS, configure_logging

LOG_LEVELS = ("debug", "info", "warning", "error")
CANNOT_LISTEN = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "hash-key":
        return _hash_key()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.command == "check":
        print(
            f"{args.config}: ok ({len(config.providers)} providers, {len(config.keys)} keys, "
            f"{len(config.models)} models)"
        )
        return 0
    from router import appkeys as keys
    from router.app import create_app  # the server side only when serving
    from router.runtime.connections import connection_limit, serve
    from router.runtime.reload import reload_on_sighup
    from router.runtime.supervisor import metrics_listener

    config = with_listen_overrides(config, args.host, args.port)
    if args.workers < 1:
        print("sora-proxy: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        return _supervise(args, config)
    try:
        listener = listen(config.server.host, config.server.port, reuse_port=args.reuse_port)
    except OSError as exc:
        return _cannot_listen(config, exc)
    _install_uvloop()
    app = create_app(config, config_path=Path(args.config), log_access=args.access_log)
    app.cleanup_ctx.append(reload_on_sighup)
    if args.metrics_port is not None:
        app.cleanup_ctx.append(metrics_listener(args.metrics_port + args.worker_index))
    serve(
        app,
        listener,
        limit=connection_limit(config.server.max_connections),
        metrics=app[keys.METRICS],
        shutdown_timeout=config.server.shutdown_timeout,
    )
    return 0


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The server's socket, bound before the app (and its simulators) start, so a taken
    address is one clear line instead of a traceback after start-up. ``reuse_port``: a
    worker's, sharing the port with its siblings (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)


def _cannot_listen(config: Config, exc: OSError) -> int:
    print(
        f"sora-proxy: cannot listen on {config.server.host}:{config.server.port}: "
        f"{os.strerror(exc.errno) if exc.errno else exc}",
        file=sys.stderr,
    )
    return CANNOT_LISTEN


def _supervise(args: argparse.Namespace, config: Config) -> int:
    """``serve --workers N``: reserve the address, then run N workers under a supervisor."""
    from router.runtime.supervisor import Supervisor, reserve, worker_command

    if config.store.backend != "redis":
        print(
            f"sora-proxy: --workers {args.workers} needs store.backend: redis (workers share "
            "jobs, limits and health through it; with sqlite each would be a proxy of its own)",
            file=sys.stderr,
        )
        return 2
    host = config.server.host
    try:
        reserved = reserve(host, config.server.port)
    except OSError as exc:
        return _cannot_listen(config, exc)
    port = int(reserved.getsockname()[1])
    argv = ["--log-level", args.log_level, "--log-format", args.log_format, "serve"]
    argv += ["--config", args.config]
    if args.access_log:
        argv.append("--access-log")
    if args.metrics_port is not None:
        argv += ["--metrics-port", str(args.metrics_port)]
    supervisor = Supervisor(
        worker_command(argv, host, port), args.workers, config.server.shutdown_timeout
    )
    try:
        return asyncio.run(supervisor.serve())
    finally:
        reserved.close()


def with_listen_overrides(config: Config, host: str | None, port: int | None) -> Config:
    """Apply ``--host``/``--port``; a ``public_url`` that named the old address follows them,
    so signed links keep pointing at where the proxy listens."""
    server = config.server
    new_host = host or server.host
    new_port = server.port if port is None else port
    public_url = server.public_url
    if public_url == f"http://{server.host}:{server.port}":
        public_url = f"http://{new_host}:{new_port}"
    return replace(
        config, server=replace(server, host=new_host, port=new_port, public_url=public_url)
    )


def _simulate(args: argparse.Namespace) -> int:
    from providers.simulator.server import serve_forever

    raw: dict[str, object] = {}
    for field in fields(SimulationSettings):
        value = getattr(args, field.name)
        if value is not None:
            raw[field.name] = value.split(",") if field.name.endswith("_words") else value
    settings, problems = SimulationSettings.parse(raw, "simulate")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    _install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(settings, host=args.host, port=args.port, api_key=args.api_key))
    return 0


def _hash_key() -> int:
    """Print the ``key_sha256`` of one client key, read from stdin (a prompt on a terminal).

    There is deliberately no ``--key`` option: an argument shows in ``ps`` to every local user
    and lands in shell history. Scripts pipe the key in, e.g. ``printf %s "$KEY" | sora-proxy
    hash-key`` (``printf`` is a shell builtin, so the key is never an argument of a process).
    """
    if sys.stdin.isatty():
        key = getpass.getpass("client key (not echoed): ")
    else:
        key = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not key:
        print("hash-key: the key is empty", file=sys.stderr)
        return 2
    if key != key.strip():
        # The proxy strips the Bearer token, so such a key could never authenticate.
        print("hash-key: the key starts or ends with whitespace", file=sys.stderr)
        return 2
    print(hashlib.sha256(key.encode()).hexdigest())  # as config hashes a plain ``key``
    return 0


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _logging_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """``--log-level`` and ``--log-format``, on the main parser (with defaults) and on each
    command (without, so a value given before the command is not reset after it)."""
    suppress = argparse.SUPPRESS
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info" if defaults else suppress)
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text" if defaults else suppress,
        help="text (the default, for a terminal) or json (one object per line)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sora-proxy", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('sora-api-proxy')}"
    )
    _logging_options(parser, defaults=True)
    logging_options = argparse.ArgumentParser(add_help=False)
    _logging_options(logging_options, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy", parents=[logging_options])
    serve.add_argument("--config", default="config.yaml")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--access-log", action="store_true", help="log one line per request (off: faster)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (above 1 needs store.backend: redis)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="also serve each worker's /metrics on 127.0.0.1:PORT+i (worker i)",
    )
    # set by the supervisor for its workers
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    check = commands.add_parser(
        "check", help="validate a config file and list every problem", parents=[logging_options]
    )
    check.add_argument("--config", default="config.yaml")
    commands.add_parser(
        "hash-key",
        help="print the key_sha256 of a client key read from stdin (prompted on a terminal)",
        parents=[logging_options],
    )
    simulate = commands.add_parser(
        "simulate", help="run a simulated upstream on its own", parents=[logging_options]
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=9000)
    simulate.add_argument("--api-key", default="", help="require this Bearer/api-key secret")
    for field in fields(SimulationSettings):
        kind = (
            str
            if field.name.endswith("_words")
            else (int if field.name in ("seed", "creates_per_minute", "video_bytes") else float)
        )
        simulate.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=kind,
            help="comma-separated" if kind is str else None,
        )
    return parser


if __name__ == "__main__":
    sys.exit(main())
