"""`python -m funcmart_hosts.local`: run funcmart on this machine.

    dev      every route, queue consumer and schedule of template.yaml on 127.0.0.1
    consume  only the queue pollers and schedules (its own process; endpoints from env vars)
    invoke   one function, one event, the response on stdout (like `sam local invoke`)
    token    a dev bearer token for the local gateway

Logs go to stderr; only a command's result (a response, a token) goes to stdout.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from funcmart.settings import SettingsError
from funcmart_hosts.local import services
from funcmart_hosts.local.config import LocalSettings, parse_pairs
from funcmart_hosts.local.services import ServiceError

STARTED = time.monotonic()


def since_command() -> float:
    """Seconds since the command started: `make dev` passes the time it began
    (FUNCMART_STARTED_AT, before its install step), else since this process started."""
    given = os.environ.get("FUNCMART_STARTED_AT", "")
    try:
        return max(0.0, time.time() - float(given))
    except ValueError:
        return time.monotonic() - STARTED


log = logging.getLogger("local-platform")
DEMO_PRODUCTS = 30


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", type=Path, help="SAM template (default: template.yaml)")
    p.add_argument(
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="override a template parameter's default (repeatable)",
    )
    p.add_argument(
        "--resource-name",
        action="append",
        metavar="LOGICALID=NAME",
        help="use this physical name for a table or queue (repeatable)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m funcmart_hosts.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole backend locally")
    _common(dev)
    dev.add_argument("--port", type=int, help="gateway port (default 3000; 0 picks a free one)")
    dev.add_argument("--host", help="address to bind (default 127.0.0.1)")
    dev.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host name to serve besides localhost, 127.0.0.1 and [::1] (repeatable; or "
        "FUNCMART_ALLOWED_HOSTS=a,b)",
    )
    dev.add_argument("--seed", action="store_true", help="add 30 demo products if none exist")
    dev.add_argument(
        "--schedule-every",
        type=float,
        metavar="SECONDS",
        help="fire every schedule at this interval instead of its rate",
    )
    dev.add_argument("--no-consumers", action="store_true", help="no queue pollers or schedules")
    dev.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="one process, no restart when the code changes",
    )
    dev.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="the functions' logs: short lines (default) or Powertools' JSON, as on AWS",
    )
    # Set by the reloading parent for its child, the process that runs the functions.
    dev.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    dev.add_argument("--backend-notes", help=argparse.SUPPRESS)
    dev.add_argument("--reloaded", action="store_true", help=argparse.SUPPRESS)

    consume = sub.add_parser("consume", help="queue pollers and schedules, without the gateway")
    _common(consume)
    consume.add_argument(
        "--function",
        action="append",
        metavar="LOGICALID",
        help="only these functions (repeatable; default: every consumer)",
    )
    consume.add_argument("--schedule-every", type=float, metavar="SECONDS")
    consume.add_argument("--no-schedules", action="store_true", help="poll queues only")
    consume.add_argument(
        "--no-provision",
        action="store_true",
        help="expect the table and queues to exist instead of creating them",
    )

    invoke = sub.add_parser("invoke", help="run one function with one event")
    _common(invoke)
    invoke.add_argument("function", metavar="FN", help="logical id, e.g. ListProducts")
    invoke.add_argument(
        "event", metavar="EVENT", nargs="?", default="", help="event JSON file, or - for stdin"
    )

    token = sub.add_parser("token", help="print a dev JWT for the local gateway")
    token.add_argument("--template", type=Path)
    token.add_argument("--parameter", action="append", metavar="NAME=VALUE")
    token.add_argument("--role", choices=["admin", "customer"], default="customer")
    token.add_argument("--sub", help="subject (default: dev-admin or dev-customer)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> LocalSettings:
    return LocalSettings.load(
        template_path=getattr(args, "template", None),
        parameters=parse_pairs(getattr(args, "parameter", None), "--parameter") or None,
        names=parse_pairs(getattr(args, "resource_name", None), "--resource-name") or None,
        **extra,
    )


def _logging(verbose: bool, text: bool = False) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        # Text: the same head as the functions' lines (logformat.py).
        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s  %(message)s"
        if text
        else "%(asctime)s %(levelname)-5s %(name)s %(message)s",
        datefmt="%H:%M:%S" if text else None,
    )
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "pynamodb", "redis"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The functions log JSON through their own handler, as on Lambda; the platform's plain
    # lines are for the platform alone.
    logging.getLogger("funcmart").propagate = False


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set `stop`; installed before startup so that either, at any
    moment, ends in a clean stop and exit 0."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _wait(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


def cmd_dev(args: argparse.Namespace, argv: Sequence[str]) -> int:
    # The port first: taken, it is named with the PORT= that works before anything starts.
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
    else:
        settings = _settings(args, port=args.port, host=args.host)
        sock = services.listen_socket(settings.host, settings.port)
    try:
        if args.reload and args.listen_fd is None:
            return _dev_reloading(args, argv, sock)
        return _dev_serve(args, sock)
    finally:
        sock.close()


def _dev_reloading(args: argparse.Namespace, argv: Sequence[str], sock: socket.socket) -> int:
    """The embedded services here, the functions in a child restarted on every change."""
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.platform import ensure_credentials, start_backends
    from funcmart_hosts.local.reloader import Reloader, watch_roots

    settings = _settings(args, port=args.port, host=args.host)
    tpl = load(settings.template_path)
    stop = threading.Event()
    _stop_on_signals(stop)
    ensure_credentials()
    backends = start_backends(settings, embedded=True)
    try:
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL_DYNAMODB=str(backends.dynamodb_endpoint),
            AWS_ENDPOINT_URL_SQS=str(backends.sqs_endpoint),
            REDIS_URL=backends.redis_url,
        )
        notes = {
            k: v.replace(")", ", kept across reloads)", 1) if "embedded" in v else v
            for k, v in backends.notes.items()
        }
        command = [
            sys.executable,
            "-m",
            "funcmart_hosts.local",
            *argv,
            "--no-reload",
            "--backend-notes",
            json.dumps(notes),
        ]
        base = settings.template_path.parent
        code = {base / fn.code_uri for fn in tpl.functions.values()}
        roots = watch_roots(settings.template_path, code)
        reloader = Reloader(command, sock, roots, env, stop, base=base)
        return reloader.run()
    finally:
        backends.stop()
        log.info("stopped")


def _dev_serve(args: argparse.Namespace, sock: socket.socket) -> int:
    from funcmart_hosts.local.platform import LocalPlatform
    from funcmart_hosts.local.reloader import parent_watchdog

    # `make dev` keeps its traces and shows them at /traces unless FUNCMART_LOCAL_TRACES=off.
    traces = None if os.environ.get("FUNCMART_LOCAL_TRACES") else "memory"
    settings = _settings(
        args,
        port=args.port,
        host=args.host,
        schedule_every=args.schedule_every,
        allowed_hosts=",".join(args.allowed_host) if args.allowed_host else None,
        traces=traces,
    )
    consumers = not args.no_consumers
    platform = LocalPlatform(
        settings,
        poll_queues=consumers,
        run_schedules=consumers,
        seed_products=DEMO_PRODUCTS if args.seed else 0,
        listen_socket=sock,
        log_format=args.log_format,
        warm_up=True,
        backend_notes=json.loads(args.backend_notes) if args.backend_notes else None,
    )
    _stop_on_signals(platform.stop_event)
    reloading = args.listen_fd is not None
    if reloading:
        parent_watchdog(platform.stop_event)
    platform.start()
    try:
        if args.reloaded:
            print(f"reloaded in {time.monotonic() - STARTED:.1f}s", flush=True)
        else:
            print(platform.describe(), flush=True)
            if reloading:
                print("reload: saving a function, the core or template.yaml restarts them")
            print(f"ready in {since_command():.1f}s (Ctrl-C stops it)", flush=True)
        _wait(platform.stop_event)
    finally:
        platform.stop()
    if not reloading:
        log.info("stopped")
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    from funcmart_hosts.local.platform import LocalPlatform

    settings = _settings(args, schedule_every=args.schedule_every)
    platform = LocalPlatform(
        settings,
        serve_http=False,
        run_schedules=not args.no_schedules,
        functions=args.function,
        provision=not args.no_provision,
        embedded=False,
    )
    _stop_on_signals(platform.stop_event)
    platform.start()
    try:
        log.info("consuming:\n%s", platform.describe())
        _wait(platform.stop_event)
    finally:
        platform.stop()
    log.info("stopped")
    return 0


def invoke_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with `invoke FN EVENT` before anything starts: an unknown function (with
    the valid names), a missing event (with the function's sample events); None when fine."""
    from funcmart_hosts.gateway.template import load

    settings = _settings(args)
    tpl = load(settings.template_path)
    names = sorted(tpl.functions)
    if args.function not in tpl.functions:
        close = difflib.get_close_matches(args.function, names, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        what = f"no function {args.function!r} in the template" if args.function else "no FN"
        return f"{what}.{hint} Functions: {', '.join(names)}"
    if args.event == "-" or Path(args.event).is_file():
        return None
    fn = tpl.functions[args.function]
    events = settings.template_path.parent / "events"
    samples = sorted(events.glob(f"{fn.module.rsplit('.', 1)[-1]}*.json"))
    listed = ", ".join(str(e.relative_to(settings.template_path.parent)) for e in samples)
    what = f"no event file {args.event!r}" if args.event else "no EVENT"
    return f"{what}. Sample events for {args.function}: {listed or 'none'}"


def cmd_invoke(args: argparse.Namespace, out: TextIO) -> int:
    from funcmart_hosts.local.platform import LocalPlatform

    problem = invoke_problem(args)
    if problem:
        log.error("%s", problem)
        log.error("usage: make invoke FN=<LogicalId> EVENT=events/<file>.json")
        return 2
    raw = sys.stdin.read() if args.event == "-" else Path(args.event).read_text()
    event = json.loads(raw)
    settings = _settings(args)
    platform = LocalPlatform(
        settings,
        serve_http=False,
        poll_queues=False,
        run_schedules=False,
        functions=[args.function],
    )
    platform.start()
    try:
        try:
            result = platform.invoke(args.function, event)
        except Exception as exc:
            # The shape Lambda reports an unhandled error in.
            error = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            traceback.print_exc()
            print(json.dumps(error, indent=2), file=out, flush=True)
            return 1
        print(json.dumps(result, indent=2, default=str), file=out, flush=True)
        return 0
    finally:
        platform.stop()


def cmd_token(args: argparse.Namespace, out: TextIO) -> int:
    from funcmart_hosts.gateway.auth import mint_token
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.resources import default_jwt_config

    settings = _settings(args)
    if settings.jwks_url:
        log.warning("FUNCMART_JWKS_URL is set: the gateway will not accept dev tokens")
    config = default_jwt_config(load(settings.template_path), settings)
    groups = ["admin"] if args.role == "admin" else []
    subject = args.sub or f"dev-{args.role}"
    print(mint_token(settings.jwt_secret, config, subject, groups, args.ttl), file=out)
    return 0


def _exit_now(code: int) -> int:
    """End `dev` once everything has stopped and flushed, without the interpreter's
    finalisation: with every function loaded, its garbage collection of the whole heap takes
    seconds that Ctrl-C would wait for, and there is nothing left to clean up."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    _logging(getattr(args, "verbose", False), getattr(args, "log_format", "json") == "text")
    # Handlers log to stdout (Powertools' default); for commands whose stdout is their
    # result, everything else goes to stderr.
    out = sys.stdout
    if args.command in ("invoke", "token"):
        sys.stdout = sys.stderr
    try:
        if args.command == "dev":
            return _exit_now(cmd_dev(args, argv))
        if args.command == "consume":
            return cmd_consume(args)
        if args.command == "invoke":
            return cmd_invoke(args, out)
        return cmd_token(args, out)
    except (SettingsError, ServiceError, ValueError, LookupError, OSError) as exc:
        log.error("%s", exc, exc_info=getattr(args, "verbose", False))
        return 2
    finally:
        sys.stdout = out
