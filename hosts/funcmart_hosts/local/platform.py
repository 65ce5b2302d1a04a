"""The local platform in one object: backing services, resources, functions, gateway, pollers.

    with LocalPlatform(settings) as platform:      # or .start() / .stop()
        httpx.get(platform.url + "/products")

`dev` runs it whole; `consume` runs it without the gateway (queue pollers and schedules as
their own process); `invoke` uses it to load one function. Tests run it in-process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from funcmart_hosts.gateway.auth import TokenVerifier, mint_token
from funcmart_hosts.gateway.events import ApiContext, HttpRequest
from funcmart_hosts.gateway.template import Template, load, route_table
from funcmart_hosts.local import provision, services
from funcmart_hosts.local.apidocs import ApiDocs
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.console import Console, OidcConfig
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.hostnames import HostNames
from funcmart_hosts.local.pollers import QueuePoller, ScheduleTimer, pollers_for
from funcmart_hosts.local.resources import TABLE, Deployment, default_jwt_config
from funcmart_hosts.local.runtime import Invoker, LoadedFunction, load_functions, warm_up
from funcmart_hosts.local.traces import TracePages, TraceStore

log = logging.getLogger("local-platform")
WARM_UP_DELAY_SECONDS = 1.0


@dataclass
class Backends:
    """Where DynamoDB, SQS and Redis are, and the embedded servers we started for them."""

    dynamodb_endpoint: str | None
    sqs_endpoint: str | None
    redis_url: str
    notes: dict[str, str] = field(default_factory=dict)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()


def start_backends(settings: LocalSettings, *, embedded: bool, need_aws: bool = True) -> Backends:
    """Endpoints from the settings; what is missing is started in-process when `embedded`."""
    ddb, sqs = settings.dynamodb_endpoint, settings.sqs_endpoint
    backends = Backends(ddb, sqs, settings.redis_url)
    if need_aws and (ddb is None or sqs is None):
        if not embedded:
            raise services.ServiceError(
                "set AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SQS (DynamoDB Local, moto, "
                "LocalStack, ...) for a consumer; `dev` starts embedded ones"
            )
        moto = services.start_moto()
        backends._stops.append(moto.stop)
        backends.dynamodb_endpoint = ddb or moto.url
        backends.sqs_endpoint = sqs or moto.url
    for kind, given in (("DynamoDB", ddb), ("SQS", sqs)):
        url = backends.dynamodb_endpoint if kind == "DynamoDB" else backends.sqs_endpoint
        if url is not None:
            backends.notes[kind] = f"{url} ({'given' if given else 'embedded moto server'})"
    if services.redis_answers(settings.redis_url):
        backends.notes["Redis"] = f"{settings.redis_url} (REDIS_URL answered)"
    else:
        fake = services.start_embedded_redis()
        backends._stops.append(fake.stop)
        backends.redis_url = fake.url
        backends.notes["Redis"] = (
            f"{fake.url} (embedded fakeredis: nothing answered at {settings.redis_url})"
        )
    return backends


def ensure_credentials() -> bool:
    """Dummy AWS credentials when none are configured: local endpoints need a signature,
    not an account. True when it set them."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return False
    aws_dir = Path.home() / ".aws"
    if (aws_dir / "credentials").exists() or (aws_dir / "config").exists():
        return False
    os.environ.update(
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_EC2_METADATA_DISABLED="true"
    )
    return True


class LocalPlatform:
    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        template: Template | None = None,
        serve_http: bool = True,
        poll_queues: bool = True,
        run_schedules: bool = True,
        functions: Iterable[str] | None = None,
        provision: bool = True,
        embedded: bool = True,
        seed_products: int = 0,
        listen_socket: socket.socket | None = None,
        log_format: str = "json",
        warm_up: bool = False,
        backend_notes: dict[str, str] | None = None,
    ) -> None:
        """`listen_socket`: serve on this bound, listening socket instead of host:port.
        `log_format` "text" prints the functions' logs as short lines (logformat.py).
        `warm_up`: cold-start the functions in the background once the gateway listens (a
        function asked for first loads at once); otherwise all load in `start()`, and one that
        fails to import fails the start. `backend_notes`: how to describe the
        endpoints, when they were started by someone else (the reloading `dev`)."""
        self.settings = settings or LocalSettings.load()
        self.tpl = template or load(self.settings.template_path)
        self.serve_http = serve_http
        self.poll_queues = poll_queues
        self.run_schedules = run_schedules
        self.provision = provision
        self.embedded = embedded
        self.seed_products = seed_products
        self.listen_socket = listen_socket
        self.log_format = log_format
        self.warm_up = warm_up
        self.backend_notes = backend_notes
        self.warmed = threading.Event()
        wanted = set(functions) if functions is not None else None
        unknown = (wanted or set()) - set(self.tpl.functions)
        if unknown:
            raise KeyError(f"the template has no functions {sorted(unknown)}")
        self.function_ids = [
            lid
            for lid, fn in self.tpl.functions.items()
            if (wanted is not None and lid in wanted)
            or (
                wanted is None
                and (
                    (serve_http and fn.routes)
                    or (poll_queues and fn.queues)
                    or (run_schedules and fn.schedules)
                )
            )
        ]
        self.stop_event = threading.Event()
        self.backends: Backends | None = None
        self.deployment: Deployment | None = None
        self.invoker: Invoker | None = None
        self.gateway: Gateway | None = None
        self.traces: TraceStore | None = None
        self.pollers: list[QueuePoller] = []
        self.timers: list[ScheduleTimer] = []

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LocalPlatform:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        ensure_credentials()
        s = self.settings
        self.backends = backends = start_backends(s, embedded=self.embedded)
        deployment = Deployment(
            self.tpl, s, backends.redis_url, backends.dynamodb_endpoint, backends.sqs_endpoint
        )
        self.deployment = deployment
        self._resources(deployment)
        if s.traces == "memory":  # before any function's cold start looks for a provider
            from funcmart_hosts.local import traces

            self.traces = traces.install()
        after_load = _text_logs(s.stack_name) if self.log_format == "text" else None
        self.invoker = Invoker(load_functions(deployment, self.function_ids, after_load))
        if not self.warm_up:
            for fn in self.invoker.functions.values():
                fn.ensure_loaded()
        if self.backend_notes is not None:
            backends.notes = dict(self.backend_notes)
        if self.serve_http:
            self.gateway = self._gateway(deployment, self.invoker)
            if self.seed_products:  # before serving: the first request sees the catalog
                made = seed_demo_products(self.gateway, self.seed_products)
                log.info("seeded %d demo products", made)
            self.gateway.start(s.host, s.port, sock=self.listen_socket)
        if self.warm_up:
            functions = list(self.invoker.functions.values())
            threading.Thread(
                target=self._warm, args=(functions,), name="warm-up", daemon=True
            ).start()
        else:
            self.warmed.set()
        if self.poll_queues:
            self._start_pollers(deployment, self.invoker)
        if self.run_schedules:
            self._start_timers(deployment, self.invoker)

    def _resources(self, deployment: Deployment) -> None:
        """The table and queues: created when missing (`provision`), else found."""
        s = self.settings
        sqs = self._sqs(deployment.sqs_endpoint)
        if self.provision:
            ddb = boto3.client(
                "dynamodb", endpoint_url=deployment.dynamodb_endpoint, region_name=s.region
            )
            for lid in self.tpl.resources_of_type(TABLE):
                if provision.ensure_table(ddb, self.tpl, lid, deployment.name(lid)):
                    log.info("created table %s", deployment.name(lid))
        if self.tpl.queues:
            names = {lid: deployment.name(lid) for lid in self.tpl.queues}
            if self.provision:
                deployment.queues = provision.ensure_queues(sqs, self.tpl, names, deployment.refs())
            else:
                deployment.queues = provision.find_queues(sqs, self.tpl, names)

    def _warm(self, functions: list[LoadedFunction]) -> None:
        # A moment's head start for the first requests: the warm-up competes with them for
        # the interpreter, and a function asked for loads at once anyway.
        if self.stop_event.wait(WARM_UP_DELAY_SECONDS):
            return
        started = time.monotonic()
        failed = warm_up(functions)
        ok = len(functions) - len(failed)
        took = time.monotonic() - started
        if failed:
            log.error(
                "%d of %d functions failed to load: %s",
                len(failed),
                len(functions),
                ", ".join(failed),
            )
        log.info("%d functions warm in %.1fs", ok, took)
        self.warmed.set()

    def _sqs(self, endpoint: str | None, connections: int = 1) -> Any:
        """An SQS client; `connections`: the threads that use it at once (its pool keeps
        botocore's default of 10 connections at least)."""
        return boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=self.settings.region,
            config=Config(max_pool_connections=max(10, connections)),
        )

    def _gateway(self, deployment: Deployment, invoker: Invoker) -> Gateway:
        s = self.settings
        routes = route_table(self.tpl, invoker.functions)
        verifier = TokenVerifier(secret=s.jwt_secret, jwks_url=s.jwks_url)
        api = ApiContext(account_id=s.account_id, api_id="local", port=s.port)
        return Gateway(
            routes,
            invoker,
            verifier,
            deployment.jwt_configs(),
            api=api,
            max_body_bytes=s.max_body_bytes,
            cors=deployment.cors_config(),
            docs=ApiDocs(),
            console=console_for(s, deployment),
            hosts=HostNames([*s.allowed_hosts.split(","), s.host]),
            traces=TracePages(self.traces) if self.traces is not None else None,
        )

    def _start_pollers(self, deployment: Deployment, invoker: Invoker) -> None:
        for lid in self.function_ids:
            for source in self.tpl.functions[lid].queues:
                queue = deployment.queues[source.queue]
                pollers = pollers_for(source, self.settings.pollers)
                poller = QueuePoller(
                    invoker,
                    lid,
                    source,
                    queue,
                    self._sqs(deployment.sqs_endpoint, connections=pollers),
                    region=self.settings.region,
                    wait_seconds=self.settings.poll_wait_seconds,
                    stop=self.stop_event,
                    pollers=pollers,
                )
                self.pollers.append(poller)
        for poller in self.pollers:
            poller.start()

    def _start_timers(self, deployment: Deployment, invoker: Invoker) -> None:
        s = self.settings
        for lid in self.function_ids:
            for schedule in self.tpl.functions[lid].schedules:
                if not schedule.enabled:
                    continue
                try:
                    every = s.schedule_every or schedule.every_seconds
                except ValueError:
                    log.warning(
                        "%s: %s is not a rate(); it fires locally only with --schedule-every",
                        lid,
                        schedule.expression,
                    )
                    continue
                rule = deployment.arn("events", f"rule/{s.stack_name}-{lid}-{schedule.name}")
                timer = ScheduleTimer(
                    invoker,
                    lid,
                    schedule,
                    rule_arn=rule,
                    account_id=s.account_id,
                    region=s.region,
                    every=every,
                    stop=self.stop_event,
                )
                self.timers.append(timer)
                timer.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop everything started, in reverse order; waits for work in flight."""
        self.stop_event.set()
        if self.gateway is not None:
            self.gateway.stop(grace)
        for thread in [*self.pollers, *self.timers]:
            thread.join(self.settings.poll_wait_seconds + grace)
            if thread.is_alive():
                log.warning("%s did not stop within %.0fs", thread.name, grace)
        if self.backends is not None:
            self.backends.stop()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("the platform serves no HTTP (serve_http=False or not started)")
        return self.gateway.url

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        if self.invoker is None:
            raise RuntimeError("the platform is not started")
        return self.invoker.invoke(logical_id, event)

    def describe(self) -> str:
        """What runs where: routes, consumers, schedules, endpoints, and how to get a token."""
        return "\n".join([*self._describe_functions(), *self._describe_endpoints()])

    def _describe_functions(self) -> list[str]:
        lines = []
        if self.gateway is not None:
            lines.append(f"funcmart local platform: {self.gateway.url}")
            for r in self.gateway.routes:
                auth = "public" if r.spec.public else f"jwt ({r.spec.authorizer})"
                lines.append(f"  {r.method:<7} {r.path:<32} {r.function:<20} {auth}")
        for p in self.pollers:
            batch = f"batch {p.source.batch_size}, {p.pollers} poller{'s' if p.pollers > 1 else ''}"
            if p.source.report_batch_item_failures:
                batch += ", partial failures"
            lines.append(f"  SQS     {p.queue.name:<32} {p.function:<20} {batch}")
        for t in self.timers:
            every = f"every {t.every:g}s"
            lines.append(f"  SCHED   {t.schedule.expression:<32} {t.function:<20} {every}")
        return lines

    def _describe_endpoints(self) -> list[str]:
        lines = []
        if self.gateway is not None:
            base = self.gateway.url
            lines.append("api docs:")
            lines.append(f"  {base}/docs            Swagger UI")
            lines.append(f"  {base}/console/        operator console")
            lines.append(f"  {base}/openapi.json    the OpenAPI document")
            lines.append(f"  {base}/metrics         Prometheus metrics")
            lines.append(f"  {base}/health          DynamoDB and Redis reachable")
            if self.traces is not None:
                lines.append(f"  {base}/traces          recent traces (?order=<id> finds one)")
        if self.backends is not None:
            lines.append("endpoints:")
            lines.extend(f"  {kind:<9} {note}" for kind, note in self.backends.notes.items())
        if self.deployment is not None:
            for lid, name in self.deployment.table_names.items():
                lines.append(f"  table     {lid} = {name}")
        if self.gateway is not None and self.settings.jwks_url:
            lines.append(f"tokens: from your identity provider (JWKS {self.settings.jwks_url})")
        elif self.gateway is not None:
            lines.append("tokens (dev secret, HS256):")
            lines.append("  make token ROLE=admin   |   make token ROLE=customer SUB=alice")
            bearer = '"Authorization: Bearer $(make -s token ROLE=admin)"'
            lines.append(f"  curl -H {bearer} {self.gateway.url}/products")
        return lines


def console_for(settings: LocalSettings, deployment: Deployment) -> Console:
    """The console signs in where the gateway's tokens come from: the identity provider
    behind the JWKS URL, or dev tokens minted with the dev secret as `make token` does."""
    config = default_jwt_config(deployment.tpl, settings)
    if settings.jwks_url:
        client = settings.console_client_id or (config.audiences or ("",))[0]
        return Console(oidc=OidcConfig(config.issuer, client))
    secret = settings.jwt_secret

    def mint(subject: str, groups: list[str], ttl: int) -> str:
        return mint_token(secret, config, subject, groups, ttl)

    return Console(minter=mint)


def _text_logs(stack_name: str) -> Callable[[], None]:
    """After each cold start: the functions' Powertools loggers print short text lines."""
    from funcmart_hosts.local import logformat

    def install() -> None:
        logformat.install(stack_prefix=f"{stack_name}-")

    return install


CATEGORIES = {
    "books": ["Atlas", "Field Guide", "Cookbook", "Novel", "Anthology"],
    "games": ["Chess Set", "Puzzle", "Card Game", "Board Game", "Dice Kit"],
    "music": ["Vinyl", "Songbook", "Ukulele", "Metronome", "Harmonica"],
}
ADJECTIVES = ["Classic", "Pocket", "Deluxe", "Travel", "Vintage", "Modern", "Junior", "Grand"]
SEED_ADMIN = {"sub": "seed-admin", "groups": ["admin"]}


def demo_products(count: int) -> list[dict[str, Any]]:
    """`count` products spread evenly over three categories, the same every time."""
    products = []
    cats = list(CATEGORIES)
    for i in range(count):
        cat = cats[i % len(cats)]
        noun = CATEGORIES[cat][(i // len(cats)) % len(CATEGORIES[cat])]
        adjective = ADJECTIVES[i % len(ADJECTIVES)]
        products.append(
            {
                "name": f"{adjective} {noun} {i + 1:02d}",
                "description": f"A {adjective.lower()} {noun.lower()} for the demo catalog.",
                "category": cat,
                "price": {"amount": 499 + 250 * (i % 12), "currency": "EUR"},
                "stock": 5 + (i * 7) % 40,
            }
        )
    return products


def seed_demo_products(gateway: Gateway, count: int = 30) -> int:
    """Demo products through the POST /products route as an admin, so the same validation
    and rules apply; none when the catalog has products already. Returns how many."""
    headers = [("host", "127.0.0.1"), ("content-type", "application/json")]
    probe = gateway.handle(HttpRequest("GET", "/products?limit=1", headers))
    if probe.response.status == 200 and json.loads(probe.response.body).get("items"):
        log.info("the catalog has products already; not seeding")
        return 0
    made = 0
    for product in demo_products(count):
        body = json.dumps(product).encode()
        outcome = gateway.handle(HttpRequest("POST", "/products", headers, body), claims=SEED_ADMIN)
        if outcome.response.status != 201:
            raise RuntimeError(
                f"seeding failed: POST /products gave {outcome.response.status}: "
                f"{outcome.response.body.decode(errors='replace')}"
            )
        made += 1
    return made
