"""Reads template.yaml, the one description of every function, queue, schedule and the table.

The local platform, `make invoke` and the tests all take their routes, environments, event
sources and the table definition from here, so that nothing about the AWS shape is written twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from funcmart_hosts.gateway.routes import HttpRoute, Route, RouteTable


def find_root(start: Path | None = None) -> Path:
    """The project folder: FUNCMART_ROOT, else the nearest folder holding template.yaml from
    the working directory up, else the checkout this package sits in."""
    if os.environ.get("FUNCMART_ROOT"):
        return Path(os.environ["FUNCMART_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[3]


ROOT = find_root()
TEMPLATE_PATH = ROOT / "template.yaml"


class _Tag:
    """A CloudFormation intrinsic function (!Ref, !GetAtt, !Sub ...) kept as data."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"!{self.name} {self.value!r}"


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tag(suffix, value)


_Loader.add_multi_constructor("!", _construct)


def load_yaml(path: Path) -> Any:
    """Parse a CloudFormation YAML file, keeping intrinsic functions as `_Tag` objects."""
    with path.open() as fh:
        return yaml.load(fh, Loader=_Loader)


@dataclass(frozen=True)
class QueueSource:
    queue: str  # logical id of the AWS::SQS::Queue
    batch_size: int
    batch_window_seconds: int
    report_batch_item_failures: bool
    # ScalingConfig.MaximumConcurrency: the most invocations the mapping runs at once
    maximum_concurrency: int | None = None


@dataclass(frozen=True)
class Schedule:
    expression: str  # rate(...) or cron(...)
    name: str = ""  # the event's key under the function's Events
    input: str | None = None  # Input: a JSON text delivered instead of the scheduled event
    enabled: bool = True

    @property
    def every_seconds(self) -> float:
        m = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", self.expression)
        if not m:
            raise ValueError(f"unsupported schedule expression {self.expression!r}")
        unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
        return int(m.group(1)) * unit


@dataclass(frozen=True)
class Function:
    logical_id: str
    handler: str  # "<module>.<attribute>"
    code_uri: str
    timeout: int
    environment: dict[str, Any]
    memory_size: int = 128
    routes: tuple[HttpRoute, ...] = ()
    queues: tuple[QueueSource, ...] = ()
    schedules: tuple[Schedule, ...] = ()

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class JwtAuthorizer:
    """An HttpApi JWT authorizer; issuer and audiences may still hold !Ref values."""

    name: str
    issuer: Any
    audiences: tuple[Any, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class CorsSpec:
    """An HttpApi's CorsConfiguration; origins may still hold !Ref values."""

    allow_origins: tuple[Any, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class Queue:
    logical_id: str
    properties: dict[str, Any]
    dead_letter_target: str | None
    max_receive_count: int | None


@dataclass
class Template:
    raw: dict[str, Any]
    functions: dict[str, Function] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    authorizers: dict[str, JwtAuthorizer] = field(default_factory=dict)
    cors: CorsSpec | None = None

    def resources_of_type(self, type_: str) -> list[str]:
        """Logical ids of every resource of one CloudFormation type, in template order."""
        return [lid for lid, res in self.raw["Resources"].items() if res.get("Type") == type_]

    def resource(self, logical_id: str) -> dict[str, Any]:
        res: dict[str, Any] = self.raw["Resources"][logical_id]
        return res

    def table_properties(self, logical_id: str = "Table") -> dict[str, Any]:
        props: dict[str, Any] = self.resource(logical_id)["Properties"]
        return props

    def create_table_kwargs(self, table_name: str, logical_id: str = "Table") -> dict[str, Any]:
        """Arguments for boto3 `create_table` that build the table exactly as the template does."""
        props = self.table_properties(logical_id)
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            spec = dict(props["StreamSpecification"])
            spec["StreamEnabled"] = True
            kwargs["StreamSpecification"] = spec
        return kwargs

    def ttl_attribute(self, logical_id: str = "Table") -> str | None:
        ttl = self.table_properties(logical_id).get("TimeToLiveSpecification") or {}
        return ttl.get("AttributeName") if ttl.get("Enabled") else None


def _routes(events: dict[str, Any], default_authorizer: str | None) -> tuple[HttpRoute, ...]:
    out = []
    for ev in events.values():
        if ev.get("Type") != "HttpApi":
            continue
        p = ev.get("Properties", {})
        auth = p.get("Auth") or {}
        name = auth.get("Authorizer", default_authorizer)
        public = name in (None, "NONE")
        out.append(
            HttpRoute(
                method=str(p.get("Method", "ANY")).upper(),
                path=str(p.get("Path", "$default")),
                public=public,
                authorizer=None if public else str(name),
                scopes=tuple(str(s) for s in auth.get("AuthorizationScopes") or ()),
            )
        )
    return tuple(out)


def _authorizers(api_props: dict[str, Any]) -> dict[str, JwtAuthorizer]:
    out = {}
    for name, spec in ((api_props.get("Auth") or {}).get("Authorizers") or {}).items():
        jwt = spec.get("JwtConfiguration")
        if not jwt:
            continue  # Lambda authorizers are not emulated
        audience = jwt.get("audience") or []
        out[name] = JwtAuthorizer(
            name=name,
            issuer=jwt.get("issuer"),
            audiences=tuple(audience if isinstance(audience, list) else [audience]),
            identity_source=str(spec.get("IdentitySource", "$request.header.Authorization")),
        )
    return out


def _cors(api_props: dict[str, Any]) -> CorsSpec | None:
    spec = api_props.get("CorsConfiguration")
    if not isinstance(spec, dict):
        return None

    def listed(key: str) -> tuple[Any, ...]:
        value = spec.get(key) or ()
        return tuple(value) if isinstance(value, list) else (value,)

    return CorsSpec(
        allow_origins=listed("AllowOrigins"),
        allow_methods=tuple(str(m).upper() for m in listed("AllowMethods")),
        allow_headers=tuple(str(h) for h in listed("AllowHeaders")),
        expose_headers=tuple(str(h) for h in listed("ExposeHeaders")),
        max_age=int(spec["MaxAge"]) if spec.get("MaxAge") is not None else None,
        allow_credentials=bool(spec.get("AllowCredentials", False)),
    )


def _ref_target(value: Any) -> str:
    if isinstance(value, _Tag):
        if value.name == "GetAtt":
            target = value.value if isinstance(value.value, str) else ".".join(value.value)
            return str(target).split(".")[0]
        return str(value.value)
    return str(value)


def _queues(events: dict[str, Any]) -> tuple[QueueSource, ...]:
    out = []
    for ev in events.values():
        if ev.get("Type") != "SQS":
            continue
        p = ev.get("Properties", {})
        scaling = p.get("ScalingConfig") or {}
        cap = scaling.get("MaximumConcurrency")
        out.append(
            QueueSource(
                queue=_ref_target(p["Queue"]),
                batch_size=int(p.get("BatchSize", 10)),
                batch_window_seconds=int(p.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in (p.get("FunctionResponseTypes") or []),
                maximum_concurrency=int(cap) if cap is not None else None,
            )
        )
    return tuple(out)


def _schedules(events: dict[str, Any]) -> tuple[Schedule, ...]:
    out = []
    for name, ev in events.items():
        if ev.get("Type") not in ("Schedule", "ScheduleV2"):
            continue
        p = ev["Properties"]
        expression = p.get("Schedule", p.get("ScheduleExpression"))
        state = p.get("State")
        enabled = bool(p.get("Enabled", True)) and state in (None, "ENABLED")
        raw_input = p.get("Input")
        out.append(
            Schedule(
                expression=str(expression),
                name=name,
                input=None if raw_input is None else str(raw_input),
                enabled=enabled,
            )
        )
    return tuple(out)


def _number(raw: dict[str, Any], value: Any) -> int:
    """A number, or the default of the template parameter a `!Ref` names."""
    if isinstance(value, _Tag) and value.name == "Ref":
        value = ((raw.get("Parameters") or {}).get(str(value.value)) or {}).get("Default")
    return int(value)


def parse(raw: dict[str, Any]) -> Template:
    tpl = Template(raw=raw)
    glob = (raw.get("Globals") or {}).get("Function") or {}
    glob_env = ((glob.get("Environment") or {}).get("Variables")) or {}
    default_authorizer: str | None = None
    for res in raw["Resources"].values():
        if res.get("Type") == "AWS::Serverless::HttpApi":
            props = res.get("Properties") or {}
            default_authorizer = (props.get("Auth") or {}).get("DefaultAuthorizer")
            tpl.authorizers.update(_authorizers(props))
            tpl.cors = _cors(props)
    for lid, res in raw["Resources"].items():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function":
            env = dict(glob_env)
            env.update(((props.get("Environment") or {}).get("Variables")) or {})
            events = props.get("Events") or {}
            tpl.functions[lid] = Function(
                logical_id=lid,
                handler=str(props.get("Handler", glob.get("Handler"))),
                code_uri=props.get("CodeUri", glob.get("CodeUri", ".")),
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                environment=env,
                memory_size=int(props.get("MemorySize", glob.get("MemorySize", 128))),
                routes=_routes(events, default_authorizer),
                queues=_queues(events),
                schedules=_schedules(events),
            )
        elif res.get("Type") == "AWS::SQS::Queue":
            redrive = props.get("RedrivePolicy") or {}
            tpl.queues[lid] = Queue(
                logical_id=lid,
                properties=props,
                dead_letter_target=_ref_target(redrive["deadLetterTargetArn"]) if redrive else None,
                max_receive_count=_number(raw, redrive["maxReceiveCount"]) if redrive else None,
            )
    return tpl


def load(path: Path = TEMPLATE_PATH) -> Template:
    return parse(load_yaml(path))


def resolve(value: Any, refs: dict[str, str]) -> str:
    """Resolve an environment value against local stand-ins for !Ref, !GetAtt, !Sub, !Join.

    An unknown reference raises KeyError naming it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, _Tag):
        return str(value)
    if value.name == "Ref":
        return refs[str(value.value)]
    if value.name == "GetAtt":
        target = value.value if isinstance(value.value, str) else ".".join(value.value)
        return refs[str(target)]
    if value.name == "Sub":
        text, local = value.value, {}
        if isinstance(text, list):
            text, extra = text
            local = {k: resolve(v, refs) for k, v in extra.items()}
        scope = {**refs, **local}
        done = re.sub(r"\$\{([^}!]+)\}", lambda m: scope[m.group(1)], str(text))
        return done.replace("${!", "${")  # ${!Literal} is CloudFormation's escape
    if value.name == "Join":
        sep, parts = value.value
        return str(sep).join(resolve(p, refs) for p in parts)
    raise ValueError(f"cannot resolve {value!r} locally")


def route_table(tpl: Template, functions: Iterable[str] | None = None) -> RouteTable:
    """Every HTTP route of the template (or of the named functions) and the function behind it."""
    wanted = set(functions) if functions is not None else None
    return RouteTable(
        Route(fn.logical_id, spec)
        for fn in tpl.functions.values()
        if wanted is None or fn.logical_id in wanted
        for spec in fn.routes
    )
