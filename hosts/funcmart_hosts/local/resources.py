"""The local stand-ins for the template's resources: names, ARNs, and each function's environment.

Every function gets the environment it would get on Lambda: template Globals, then its own
variables, with `!Ref`/`!GetAtt`/`!Sub` resolved against the local resources (`!Ref Table` is
the local table's name, `!Ref SomeQueue` its URL, parameters their defaults), then the local
endpoints and Redis on top, because those are what differ from AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from funcmart_hosts.gateway.auth import JwtConfig
from funcmart_hosts.gateway.template import Function, Template, resolve
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.cors import CorsConfig

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
FUNCTION = "AWS::Serverless::Function"


class ResolutionError(ValueError):
    """A template value that has no local stand-in; the message names the function and key."""


@dataclass(frozen=True)
class QueueRef:
    logical_id: str
    name: str
    url: str
    arn: str


def physical_name(tpl: Template, settings: LocalSettings, logical_id: str) -> str:
    """The local name of a resource: an explicit override, the template's own name, else
    "<stack>-<LogicalId>" (CloudFormation adds a random suffix; locally names stay stable)."""
    if logical_id in settings.names:
        return settings.names[logical_id]
    res = tpl.resource(logical_id)
    props = res.get("Properties") or {}
    if res.get("Type") == TABLE and isinstance(props.get("TableName"), str):
        return str(props["TableName"])
    if res.get("Type") == QUEUE:
        if isinstance(props.get("QueueName"), str):
            return str(props["QueueName"])
        fifo = str(props.get("FifoQueue", "")).lower() == "true"
        return f"{settings.stack_name}-{logical_id}" + (".fifo" if fifo else "")
    if res.get("Type") == FUNCTION and isinstance(props.get("FunctionName"), str):
        return str(props["FunctionName"])
    return f"{settings.stack_name}-{logical_id}"


# Where local runs differ from a deployment's defaults: payments go to the simulator (a
# deployment takes real ones unless it says otherwise). `--parameter` still overrides.
LOCAL_PARAMETER_DEFAULTS = {"PaymentProvider": "simulator"}


def parameter_values(tpl: Template, settings: LocalSettings) -> dict[str, str]:
    """Every template parameter: the override when given, else the local default, else the
    template's default."""
    out = {}
    for name, spec in (tpl.raw.get("Parameters") or {}).items():
        value = settings.parameters.get(
            name, LOCAL_PARAMETER_DEFAULTS.get(name, spec.get("Default"))
        )
        if value is None:
            continue  # a parameter without default resolves only when overridden
        out[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    unknown = set(settings.parameters) - set(out)
    if unknown:
        raise ResolutionError(f"the template has no parameters named {sorted(unknown)}")
    return out


@dataclass
class Deployment:
    """The local resources of one template, and where the functions reach them."""

    tpl: Template
    settings: LocalSettings
    redis_url: str
    dynamodb_endpoint: str | None
    sqs_endpoint: str | None
    queues: dict[str, QueueRef] = field(default_factory=dict)

    def name(self, logical_id: str) -> str:
        return physical_name(self.tpl, self.settings, logical_id)

    @property
    def table_names(self) -> dict[str, str]:
        return {lid: self.name(lid) for lid in self.tpl.resources_of_type(TABLE)}

    def arn(self, service: str, resource: str) -> str:
        s = self.settings
        return f"arn:aws:{service}:{s.region}:{s.account_id}:{resource}"

    def refs(self) -> dict[str, str]:
        """What !Ref, !GetAtt and ${...} stand for locally."""
        s = self.settings
        refs: dict[str, str] = {
            "AWS::Region": s.region,
            "AWS::AccountId": s.account_id,
            "AWS::StackName": s.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        refs.update(parameter_values(self.tpl, s))
        for lid, res in self.tpl.raw["Resources"].items():
            kind = res.get("Type")
            name = self.name(lid)
            if kind == TABLE:
                arn = self.arn("dynamodb", f"table/{name}")
                refs.update(
                    {lid: name, f"{lid}.Arn": arn, f"{lid}.StreamArn": f"{arn}/stream/local"}
                )
            elif kind == QUEUE:
                q = self.queues.get(lid)
                if q is not None:
                    refs[lid] = refs[f"{lid}.QueueUrl"] = q.url
                    refs[f"{lid}.Arn"], refs[f"{lid}.QueueName"] = q.arn, q.name
            elif kind == FUNCTION:
                refs.update({lid: name, f"{lid}.Arn": self.arn("lambda", f"function:{name}")})
            else:
                refs[lid] = name
        return refs

    def function_env(self, fn: Function) -> dict[str, str]:
        """The function's environment as Lambda would set it, pointed at the local services."""
        refs = self.refs()
        env: dict[str, str] = {}
        for key, value in fn.environment.items():
            try:
                env[key] = resolve(value, refs)
            except (KeyError, ValueError) as exc:
                raise ResolutionError(
                    f"{fn.logical_id}: cannot resolve {key}={value!r} locally ({exc})"
                ) from exc
        s = self.settings
        env.update(
            {
                "AWS_REGION": s.region,
                "AWS_DEFAULT_REGION": s.region,
                "AWS_LAMBDA_FUNCTION_NAME": self.name(fn.logical_id),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                # The flag Powertools and the SAM CLI use for "emulated, not on Lambda": it
                # keeps X-Ray tracing off, as nothing would receive the segments.
                "AWS_SAM_LOCAL": "true",
                "REDIS_URL": self.redis_url,
                # The embedded SQS has no message move tasks: dead letters are moved back
                # message by message (funcmart.adapters.sqs_operations).
                "REDRIVE_METHOD": "copy",
            }
        )
        if s.traces == "memory":  # into the platform's own tracer provider (local/traces.py)
            env["FUNCMART_TRACING"] = "otlp"
        if self.dynamodb_endpoint:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_endpoint
        if self.sqs_endpoint:
            env["AWS_ENDPOINT_URL_SQS"] = self.sqs_endpoint
        return env

    def cors_config(self) -> CorsConfig | None:
        """The HttpApi's CORS configuration with its origins resolved (a CommaDelimitedList
        parameter stands for several)."""
        spec = self.tpl.cors
        if spec is None:
            return None
        refs = self.refs()
        origins: list[str] = []
        for value in spec.allow_origins:
            try:
                resolved = resolve(value, refs)
            except (KeyError, ValueError) as exc:
                raise ResolutionError(f"CorsConfiguration.AllowOrigins: {exc}") from exc
            origins += [o.strip() for o in resolved.split(",") if o.strip()]
        return CorsConfig(
            allow_origins=tuple(origins),
            allow_methods=spec.allow_methods,
            allow_headers=spec.allow_headers,
            expose_headers=spec.expose_headers,
            max_age=spec.max_age,
            allow_credentials=spec.allow_credentials,
        )

    def jwt_configs(self) -> dict[str, JwtConfig]:
        """The HttpApi's JWT authorizers with issuer and audiences resolved."""
        refs = self.refs()
        out = {}
        for name, a in self.tpl.authorizers.items():
            try:
                issuer = resolve(a.issuer, refs)
                audiences = tuple(resolve(v, refs) for v in a.audiences)
            except (KeyError, ValueError) as exc:
                raise ResolutionError(f"authorizer {name}: {exc}") from exc
            header = "authorization"
            prefix = "$request.header."
            if a.identity_source.startswith(prefix):
                header = a.identity_source.removeprefix(prefix).lower()
            out[name] = JwtConfig(issuer=issuer, audiences=audiences, header=header)
        return out


def default_jwt_config(tpl: Template, settings: LocalSettings) -> JwtConfig:
    """The authorizer dev tokens are minted for: the HttpApi's default (or only) one."""
    configs = Deployment(tpl, settings, "", None, None).jwt_configs()
    if not configs:
        raise ResolutionError("the template's HttpApi has no JWT authorizer")
    default = _default_authorizer(tpl)
    return configs.get(default or "", next(iter(configs.values())))


def _default_authorizer(tpl: Template) -> str | None:
    for lid in tpl.resources_of_type("AWS::Serverless::HttpApi"):
        props: dict[str, Any] = tpl.resource(lid).get("Properties") or {}
        name = (props.get("Auth") or {}).get("DefaultAuthorizer")
        if name:
            return str(name)
    return None
