"""Custom resources held to the schemas their projects publish, as an API server would.

An API server validates a custom resource against its CRD's `openAPIV3Schema` (types,
required fields, enums, patterns) and `kubectl apply` refuses fields the schema does not
know (strict field validation, kubectl's default). The schemas come from packages, never
from files in this repository:

- Knative Serving 1.17 and Eventing 1.17, and the Prometheus operator 0.80 (the CRDs
  kube-prometheus-stack installs): cloudcoil's models, generated from those projects' CRDs,
  the newest releases published for Python before 3.14. Against the current releases'
  CRDs, Eventing's Broker, Trigger, PingSource and SinkBinding schemas are the same, and
  Serving's Service has only gained optional fields this project does not use
  (mountPropagation; csi, ephemeral and image volumes). A model validates types, required
  fields, enums and patterns; a field it drops or a value it converts is one the schema
  does not have (`_difference`).
- cert-manager 1.17 (Certificate): cloudcoil's models generated from its CRDs, the newest
  release published for Python before 3.14; the fields used here (secretName, dnsNames,
  issuerRef, privateKey, usages) are unchanged in cert-manager's current v1 API.
- Gateway API v1 (HTTPRoute, Gateway): `@kubernetes-models/gateway-api` from the npm
  registry, generated from Gateway API's Go types (which its CRDs are generated from):
  types, required fields, enums and patterns. Its validators allow unknown fields, so
  those are not caught for these two kinds.
- Envoy Gateway's HTTPRouteFilter (gateway.envoyproxy.io/v1alpha1): no Python or npm
  package publishes Envoy Gateway's CRDs (its Helm chart does), so the one part used here,
  `credentialInjection`, is held to the fields of its Go type (Envoy Gateway 1.4's
  `api/v1alpha1/httproutefilter_types.go`: `header` a string, `overwrite` a boolean,
  `credential.valueRef` a SecretObjectReference, required) and unknown fields are refused.
  This is our reading of that type, the one exception to the rule above.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic

from funcmart_hosts.gateway.template import ROOT

GATEWAY_API = "gateway.networking.k8s.io/v1"
ENVOY_GATEWAY = "gateway.envoyproxy.io/v1alpha1"
GATEWAY_SCRIPT = Path(__file__).with_name("gateway_api_schema.mjs")


def _models() -> dict[str, ModuleType]:
    with warnings.catch_warnings():
        # The generated models name fields after the attributes of their base class.
        warnings.simplefilter("ignore", UserWarning)
        from cloudcoil.models.cert_manager import v1 as cert_manager
        from cloudcoil.models.knative_eventing.eventing import v1 as eventing
        from cloudcoil.models.knative_eventing.sources import v1 as sources
        from cloudcoil.models.knative_serving.serving import v1 as serving
        from cloudcoil.models.prometheus_operator import v1 as monitoring
    return {
        "serving.knative.dev/v1": serving,
        "eventing.knative.dev/v1": eventing,
        "sources.knative.dev/v1": sources,
        "monitoring.coreos.com/v1": monitoring,
        "cert-manager.io/v1": cert_manager,
    }


MODELS = _models()
KINDS = {GATEWAY_API: {"HTTPRoute", "Gateway"}, ENVOY_GATEWAY: {"HTTPRouteFilter"}} | {
    api: {
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and name[0].isupper()
    }
    for api, module in MODELS.items()
}


def covers(doc: Mapping[str, Any]) -> bool:
    return doc["kind"] in KINDS.get(doc["apiVersion"], set())


def violations(doc: Mapping[str, Any]) -> list[str]:
    """What the kind's CRD schema refuses in `doc` (Knative, monitoring, cert-manager)."""
    model = getattr(MODELS[doc["apiVersion"]], doc["kind"])
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as e:
        return [
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors(include_url=False)
        ]
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return list(_difference(doc, dumped, "$"))


def _difference(sent: Any, kept: Any, where: str) -> Iterable[str]:
    if isinstance(sent, Mapping):
        if not isinstance(kept, Mapping):
            yield f"{where}: an object the schema reads as {type(kept).__name__}"
            return
        for key, value in sent.items():
            if key not in kept:
                yield f"{where}.{key}: unknown field"
            else:
                yield from _difference(value, kept[key], f"{where}.{key}")
    elif isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            yield f"{where}: a list the schema does not keep"
            return
        for i, (a, b) in enumerate(zip(sent, kept, strict=True)):
            yield from _difference(a, b, f"{where}[{i}]")
    elif type(sent) is not type(kept) or sent != kept:
        yield f"{where}: {sent!r} is not of the schema's type (read as {kept!r})"


def gateway_violations(docs: list[Mapping[str, Any]]) -> list[list[str]]:
    """What Gateway API's schemas refuse in each of `docs` (one Node.js process for all)."""
    node = shutil.which("node")
    assert node, "Node.js is missing (it runs DynamoDB Local's installer too)"
    assert (ROOT / "node_modules" / "@kubernetes-models" / "gateway-api").is_dir(), (
        "Gateway API's schemas are not installed: `make test` installs them (npm install)"
    )
    out = subprocess.run(
        [node, str(GATEWAY_SCRIPT)],
        input=json.dumps(list(docs)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    answers: list[list[str]] = json.loads(out.stdout)
    assert len(answers) == len(docs)
    return answers


# HTTPRouteFilter.spec.credentialInjection as Envoy Gateway 1.4 types it (module docstring).
_SECRET_REF = {"group": str, "kind": str, "name": str, "namespace": str}
_CREDENTIAL_INJECTION = {
    "header": str,
    "overwrite": bool,
    "credential": {"valueRef": _SECRET_REF},
}
_REQUIRED = {
    "$.spec.credentialInjection": {"credential"},
    "$.spec.credentialInjection.credential": {"valueRef"},
    "$.spec.credentialInjection.credential.valueRef": {"name"},
}


def envoy_gateway_violations(doc: Mapping[str, Any]) -> list[str]:
    """What Envoy Gateway's HTTPRouteFilter type refuses in `doc` (credentialInjection only)."""
    if doc["kind"] != "HTTPRouteFilter":
        return [f"no schema for {doc['kind']}"]
    spec = doc.get("spec")
    if not isinstance(spec, Mapping) or set(spec) != {"credentialInjection"}:
        return ["$.spec: only credentialInjection is checked here"]
    return list(
        _typed(spec["credentialInjection"], _CREDENTIAL_INJECTION, "$.spec.credentialInjection")
    )


def _typed(value: Any, shape: Any, where: str) -> Iterable[str]:
    if isinstance(shape, dict):
        if not isinstance(value, Mapping):
            yield f"{where}: not an object"
            return
        for key in _REQUIRED.get(where, set()) - set(value):
            yield f"{where}.{key}: Field required"
        for key, item in value.items():
            if key not in shape:
                yield f"{where}.{key}: unknown field"
            else:
                yield from _typed(item, shape[key], f"{where}.{key}")
    elif type(value) is not shape:
        yield f"{where}: {value!r} is not a {shape.__name__}"
