"""What a stock cluster admits, as rules over manifests.

- `knative_violations`: Knative Serving's webhook with its default `config-features` (every
  `kubernetes.podspec-*` flag at its default: emptyDir volumes and multi-container on, all
  else off). It keeps a field only when its field mask allows it and refuses the Service
  otherwise; the masks below follow Serving's `pkg/apis/serving/fieldmask.go` and the checks
  of `k8s_validation.go` (one declared port, named http1 or h2c, not a reserved one; no
  reserved variables; probes on the serving port).
- `restricted_violations`: the Pod Security Standards' "restricted" profile (which includes
  "baseline") as the Kubernetes documentation lists its controls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# ------------------------------------------------------------------ Knative Serving

# Pod spec fields kept with the default flags (the rest need a flag that is off).
POD_SPEC_ALLOWED = {
    "serviceAccountName",
    "containers",
    "volumes",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",  # only `false`
    # Knative's own RevisionSpec fields beside the pod spec.
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
}
# Needs `kubernetes.podspec-<flag>` (disabled by default).
POD_SPEC_FLAGGED = {
    "affinity": "affinity",
    "topologySpreadConstraints": "topologyspreadconstraints",
    "hostAliases": "hostaliases",
    "nodeSelector": "nodeselector",
    "runtimeClassName": "runtimeclassname",
    "tolerations": "tolerations",
    "securityContext": "securitycontext",
    "shareProcessNamespace": "shareprocessnamespace",
    "priorityClassName": "priorityclassname",
    "schedulerName": "schedulername",
    "initContainers": "init-containers",
    "dnsPolicy": "dnspolicy",
    "dnsConfig": "dnsconfig",
    "hostIPC": "hostipc",
    "hostPID": "hostpid",
    "hostNetwork": "hostnetwork",
}
CONTAINER_ALLOWED = {
    "name",
    "args",
    "command",
    "env",
    "workingDir",
    "envFrom",
    "image",
    "imagePullPolicy",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "startupProbe",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
}
SECURITY_CONTEXT_ALLOWED = {
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "seccompProfile",
    "privileged",  # only `false`
}
VOLUME_SOURCES_ALLOWED = {"secret", "configMap", "projected", "emptyDir"}
VOLUME_MOUNT_ALLOWED = {"name", "readOnly", "mountPath", "subPath"}
ENV_VALUE_FROM_ALLOWED = {"configMapKeyRef", "secretKeyRef"}  # fieldRef needs a flag
PORT_ALLOWED = {"name", "containerPort", "protocol"}
PORT_NAMES = {"", "http1", "h2c"}
RESERVED_PORTS = {8008, 8012, 8013, 8022, 9090, 9091}
RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
RESERVED_MOUNT_PATHS = {"/", "/dev", "/dev/log"}
PROBE_ALLOWED = {
    "httpGet",
    "tcpSocket",
    "exec",
    "grpc",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
}


def _extra(node: Mapping[str, Any], allowed: set[str], where: str) -> Iterator[str]:
    for key in sorted(set(node) - allowed):
        yield f"{where}.{key} is not allowed by Knative's default field mask"


def _probe(probe: Mapping[str, Any], port: Mapping[str, Any], where: str) -> Iterator[str]:
    yield from _extra(probe, PROBE_ALLOWED, where)
    for kind in ("httpGet", "tcpSocket"):
        target = (probe.get(kind) or {}).get("port")
        if target is not None and target not in (port.get("name"), port.get("containerPort")):
            yield f"{where}.{kind}.port must be the serving port"


def _env(c: Mapping[str, Any], where: str) -> Iterator[str]:
    for i, env in enumerate(c.get("env") or []):
        if env.get("name") in RESERVED_ENV:
            yield f"{where}.env[{i}]: {env['name']} is reserved"
        for key in sorted(set(env.get("valueFrom") or {}) - ENV_VALUE_FROM_ALLOWED):
            flag = " (kubernetes.podspec-fieldref)" if "field" in key.lower() else ""
            yield f"{where}.env[{i}].valueFrom.{key} needs a flag{flag}"


def _container(c: Mapping[str, Any], volumes: set[str], where: str) -> Iterator[str]:
    yield from _extra(c, CONTAINER_ALLOWED, where)
    yield from _env(c, where)
    sc = c.get("securityContext") or {}
    yield from _extra(sc, SECURITY_CONTEXT_ALLOWED, f"{where}.securityContext")
    if sc.get("privileged") is True:
        yield f"{where}.securityContext.privileged: only false is allowed"
    if (sc.get("capabilities") or {}).get("add"):
        yield f"{where}.securityContext.capabilities.add needs containerspec-addcapabilities"
    yield from _ports_and_mounts(c, volumes, where)
    ports = c.get("ports") or []
    port = ports[0] if ports else {"name": "http", "containerPort": 8080}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if c.get(kind) is not None:
            yield from _probe(c[kind], port, f"{where}.{kind}")


def _ports_and_mounts(c: Mapping[str, Any], volumes: set[str], where: str) -> Iterator[str]:
    for i, port in enumerate(c.get("ports") or []):
        yield from _extra(port, PORT_ALLOWED, f"{where}.ports[{i}]")
        if port.get("containerPort") in RESERVED_PORTS:
            yield f"{where}.ports[{i}]: {port['containerPort']} is reserved by Knative"
        if port.get("name", "") not in PORT_NAMES:
            yield f"{where}.ports[{i}].name must be empty, http1 or h2c"
    for i, mount in enumerate(c.get("volumeMounts") or []):
        yield from _extra(mount, VOLUME_MOUNT_ALLOWED, f"{where}.volumeMounts[{i}]")
        if mount.get("name") not in volumes:
            yield f"{where}.volumeMounts[{i}] names no volume"
        if mount.get("mountPath") in RESERVED_MOUNT_PATHS:
            yield f"{where}.volumeMounts[{i}].mountPath is reserved"


def knative_violations(ksvc: Mapping[str, Any]) -> list[str]:
    """Why a stock Knative (default feature flags) would refuse this Service; [] if none."""
    spec = ksvc["spec"]["template"]["spec"]
    out: list[str] = []
    for key in sorted(set(spec) - POD_SPEC_ALLOWED):
        flag = POD_SPEC_FLAGGED.get(key)
        needs = f"kubernetes.podspec-{flag}" if flag else "a field Knative never allows"
        out.append(f"spec.{key} needs {needs}")
    if spec.get("automountServiceAccountToken", False) is not False:
        out.append("spec.automountServiceAccountToken: only false is allowed")
    volumes = {}
    for i, v in enumerate(spec.get("volumes") or []):
        sources = set(v) - {"name"}
        for s in sorted(sources - VOLUME_SOURCES_ALLOWED):
            out.append(f"spec.volumes[{i}].{s} needs a flag (kubernetes.podspec-volumes-*)")
        volumes[v.get("name")] = v
    containers = spec.get("containers") or []
    if sum(len(c.get("ports") or []) for c in containers) > 1:
        out.append("more than one container port is set (Knative serves exactly one)")
    for i, c in enumerate(containers):
        out += _container(c, set(volumes), f"spec.containers[{i}]")
    return out


# ----------------------------------------------------------- Pod Security "restricted"

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(pod.get(kind) or []):
            yield f"{kind}[{i}]", c


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Why a namespace enforcing Pod Security "restricted" would refuse this pod spec."""
    psc = pod.get("securityContext") or {}
    out = list(_restricted_pod(pod, psc))
    for where, c in _containers(pod):
        out += _restricted_container(c, psc, where)
    return out


def _restricted_pod(pod: Mapping[str, Any], psc: Mapping[str, Any]) -> Iterator[str]:
    out: list[str] = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key} is not allowed")
    for i, v in enumerate(pod.get("volumes") or []):
        for source in sorted(set(v) - {"name"} - RESTRICTED_VOLUMES):
            out.append(f"volumes[{i}]: {source} volumes are not allowed")
    if psc.get("runAsUser") == 0:
        out.append("securityContext.runAsUser must not be 0")
    if (psc.get("seccompProfile") or {}).get("type") not in (None, *SECCOMP_OK):
        out.append("securityContext.seccompProfile.type must be RuntimeDefault or Localhost")
    for sysctl in psc.get("sysctls") or []:
        out.append(f"sysctl {sysctl.get('name')} is not in the safe set")
    yield from out


SELINUX_TYPES = (
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
)


def _restricted_container(
    c: Mapping[str, Any], psc: Mapping[str, Any], where: str
) -> Iterator[str]:
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    failed = {
        "privileged": bool(sc.get("privileged")),
        "allowPrivilegeEscalation must be false": sc.get("allowPrivilegeEscalation") is not False,
        "capabilities must drop ALL": "ALL" not in (caps.get("drop") or []),
        "only NET_BIND_SERVICE may be added": bool(
            set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        ),
        "runAsNonRoot must be true": sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True,
        "runAsUser must not be 0": sc.get("runAsUser") == 0,
        "seccompProfile must be RuntimeDefault or Localhost": seccomp not in SECCOMP_OK,
        "procMount must be Default": sc.get("procMount") not in (None, "Default"),
        "hostPort is not allowed": any(p.get("hostPort") for p in c.get("ports") or []),
        "seLinuxOptions.type is not allowed": (sc.get("seLinuxOptions") or {}).get("type")
        not in SELINUX_TYPES,
    }
    for reason, bad in failed.items():
        if bad:
            yield f"{where}: {reason}"


def hardened_violations(pod: Mapping[str, Any]) -> list[str]:
    """funcmart's own bar beyond "restricted": a read-only root file system, with /tmp on an
    emptyDir, and probes on every long-running container."""
    out: list[str] = []
    emptydirs = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
    for where, c in _containers(pod):
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem must be true")
        tmp = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
        if not tmp or tmp[0]["name"] not in emptydirs:
            out.append(f"{where}: /tmp must be an emptyDir")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                out.append(f"{where}: {probe} is missing")
    return out
