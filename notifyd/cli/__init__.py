"""``notifyd`` command line: dev, serve, worker, publish, status, subscribers, queues."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import redis

from notifyd import __version__
from notifyd.cli.common import EXIT_INVALID, EXIT_UNAVAILABLE, CliError, RemoteError
from notifyd.runtime import logs
from notifyd.runtime.connection import RedisUnavailable
from notifyd.runtime.durability import DurabilityUnavailable
from notifyd.runtime.settings import ConfigError, Settings, check_environment, load_settings
from notifyd.state.sealing import SealError

#: --api: talk to a running server through notifyd.client instead of to Redis.
API_HELP = "a running notifyd API (default $NOTIFYD_API_URL); the key comes from $NOTIFYD_API_KEY"


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    logs.configure(settings.log_format, verbose=args.verbose)
    return settings


def _runtime(args: argparse.Namespace) -> Any:
    from notifyd.runtime.wiring import Runtime

    return Runtime.start(_settings(args))


# -- publish / status ---------------------------------------------------------------------


def _api_url(args: argparse.Namespace) -> str | None:
    return args.api or os.environ.get("NOTIFYD_API_URL") or None


def cmd_publish(args: argparse.Namespace) -> int:
    from notifyd.cli.publish import local_publisher, publish_stream

    if url := _api_url(args):
        from notifyd.cli import remote as cli_remote

        with cli_remote.connect(url) as client:
            return publish_stream(cli_remote.publisher(client), args.file)
    rt = _runtime(args)
    try:
        return publish_stream(local_publisher(rt), args.file)
    finally:
        rt.close()


def cmd_status(args: argparse.Namespace) -> int:
    from notifyd.cli.status import show_status

    if url := _api_url(args):
        from notifyd.cli import remote as cli_remote

        with cli_remote.connect(url) as client:
            return show_status(
                cli_remote.event_lookup(client, page=args.page),
                args.event_id,
                as_json=args.json,
                watch=args.watch,
            )
    rt = _runtime(args)

    def lookup(event_id: str) -> dict[str, Any] | None:
        from notifyd.state.tracking import AmbiguousEventId

        # Event ids are unique per page: the same id on two pages is two events.
        try:
            return rt.tracker.summary_by_id(event_id, args.page)
        except AmbiguousEventId as exc:
            raise CliError(f"{exc} with --page") from None

    try:
        return show_status(lookup, args.event_id, as_json=args.json, watch=args.watch)
    finally:
        rt.close()


# -- subscribers ----------------------------------------------------------------------------


def cmd_subscribers(args: argparse.Namespace) -> int:
    from notifyd.cli import subscribers as cli_subscribers

    rt = _runtime(args)
    try:
        return cli_subscribers.run(rt, args)
    finally:
        rt.close()


# -- processes ----------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    import threading

    from notifyd.runtime.worker import parse_queues, run_forever, supervise

    settings = _settings(args)
    try:
        lanes = parse_queues(args.queues)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.processes <= 1:
        if args.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, addr=args.metrics_host)
        return run_forever(settings, lanes=lanes, threads=args.threads)
    from notifyd.runtime.connection import resolve_redis

    url, embedded = resolve_redis(settings)  # refuses an unreachable Redis before any child starts
    env = {**os.environ, "NOTIFYD_REDIS_URL": url}
    child = ["worker", "--processes", "1", "--threads", str(args.threads), "--queues", ",".join(lanes)]
    if args.metrics_port:
        child += ["--metrics-host", args.metrics_host]
    if args.config:
        child[:0] = ["--config", args.config]
    metrics_ports = [args.metrics_port + i for i in range(args.processes)] if args.metrics_port else None
    stop = threading.Event()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return supervise(child, args.processes, env, stop, metrics_ports=metrics_ports)
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_dev(args: argparse.Namespace) -> int:
    from notifyd.cli.dev import run_dev

    return run_dev(
        _settings(args), host=args.host, port=args.port, threads=args.threads, standins=args.standins
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from notifyd.api.server import serve

    return serve(_settings(args), host=args.host, port=args.port)


def cmd_queues(args: argparse.Namespace) -> int:
    from notifyd.cli.queues import watch_queues

    rt = _runtime(args)
    try:
        return watch_queues(rt, once=args.once, as_json=args.json)
    finally:
        rt.close()


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifyd", description="Notification delivery for status pages.")
    parser.add_argument("--config", help="TOML settings file (default: $NOTIFYD_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    parser.add_argument("--version", action="version", version=f"notifyd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "dev", help="API, workers and (without NOTIFYD_REDIS_URL) an embedded Redis, in one command"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument(
        "--standins",
        action="store_true",
        help="deliver email, SMS and Slack to loopback stand-ins (no accounts), and open a webhook inbox",
    )
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the delivery workers")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--queues", default=None, help="comma-separated priorities (default: all)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this process's Prometheus metrics on PORT (children use PORT+1, PORT+2, ...)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for --metrics-port (0.0.0.0 in a container, so Prometheus can reach it)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("publish", help="publish one JSON event, or NDJSON events, from FILE or -")
    p.add_argument("file")
    p.add_argument("--api", metavar="URL", help=API_HELP)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("status", help="an event's delivery summary")
    p.add_argument("event_id")
    p.add_argument("--page", help="the event's page, when several pages used this event id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true")
    p.add_argument("--api", metavar="URL", help=API_HELP)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("subscribers", help="manage subscribers")
    ssub = p.add_subparsers(dest="action", required=True)
    a = ssub.add_parser("add")
    a.add_argument("--page", required=True)
    a.add_argument("--channel", required=True)
    a.add_argument("--target", required=True)
    a.add_argument("--secret")
    a.add_argument("--component", action="append", dest="components")
    a.add_argument("--contact-email")
    a.add_argument("--id")
    a = ssub.add_parser("import")
    a.add_argument("--page", required=True)
    a.add_argument("--format", choices=["ndjson", "csv"])
    a.add_argument("file")
    a = ssub.add_parser("list")
    a.add_argument("--page", required=True)
    a = ssub.add_parser("remove")
    a.add_argument("--page", required=True)
    a.add_argument("id")
    a = ssub.add_parser("reactivate", help="re-enable a quarantined or disabled subscriber")
    a.add_argument("--page", required=True)
    a.add_argument("id")
    a.add_argument(
        "--force",
        action="store_true",
        help="also override the subscriber's own opt-out (unsubscribed, SMS STOP, 410 Gone); recorded",
    )
    a.add_argument("--actor", help="who is doing this, for the audit trail (default: the OS user)")
    p.set_defaults(func=cmd_subscribers)

    p = sub.add_parser("queues", help="live view of queue depths, retries and dead letters")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_queues)

    from notifyd.cli import keys as cli_keys

    cli_keys.register(sub)
    from notifyd.cli import secrets as cli_secrets

    cli_secrets.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure("text", verbose=args.verbose)
    try:
        check_environment()  # every command, also those that talk to a remote API and read no settings
        return int(args.func(args) or 0)
    except (CliError, ConfigError, RemoteError, SealError) as exc:
        print(f"notifyd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except DurabilityUnavailable as exc:  # one line: why this Redis cannot meet NOTIFYD_DURABILITY
        print(f"notifyd: refusing to start: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except RedisUnavailable as exc:  # one line naming the URL and the cause, never a traceback
        print(f"notifyd: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # Redis went away while the command ran
        print(
            f"notifyd: lost the connection to Redis: {str(exc).strip() or type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
