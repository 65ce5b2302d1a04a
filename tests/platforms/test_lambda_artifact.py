"""The Lambda artifacts as the real `sam build` makes them, held against what Lambda needs.

Lambda unpacks a function's zip (and its layers) onto a read-only file system and imports the
handler with the runtime's Python. So every artifact must carry bytecode that Python uses as
it is (compiled for the runtime's version, hash-based and unchecked, so zip timestamps cannot
invalidate it), hold the function package alone (no host, no fake, no dev token minting), and
stay small. The SAM CLI lives in its own environment (`.venv-sam`, which `make test` creates).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from funcmart_hosts.gateway.template import ROOT, load_yaml

SAM = ROOT / ".venv-sam" / "bin" / "sam"
MAX_UNPACKED = 30 * 1024 * 1024  # per function: its own artifact plus the layers it uses
LAYERS = ("Dependencies", "StripeSdk", "OpenTelemetry")
# What the Lambda Python runtime provides: bundling it would only add weight.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")
HOST_MARKERS = ("funcmart_hosts", "mint_token", "FakeRateLimiter", "dev-only-secret")
HANDLER_MODULES = sorted(p.name for p in (ROOT / "functions").glob("*.py"))
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not SAM.exists():
        pytest.fail(f"the SAM CLI is not installed at {SAM}: `make test` installs it")
    out = tmp_path_factory.mktemp("sam-build")
    subprocess.run(
        [str(SAM), "build", "--template-file", "template.yaml", "--build-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def built_template(built: Path) -> dict:
    return load_yaml(built / "template.yaml")  # type: ignore[no-any-return]


def functions_of(tpl: dict) -> dict[str, dict]:
    resources = tpl["Resources"]
    return {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def runtime_version(tpl: dict) -> str:
    runtime = str(tpl["Globals"]["Function"]["Runtime"])  # "python3.11"
    return runtime.removeprefix("python")


def runtime_python(version: str) -> str:
    """The runtime's Python, found as the build finds it (tools/dx.sh python-of: a pyenv shim
    for a version not selected does not count)."""
    found = subprocess.run(
        ["bash", str(ROOT / "tools" / "dx.sh"), "python-of", version],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not found:
        pytest.fail(f"python{version}, the template's runtime, is needed to build and check")
    return found


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def magic_of(version: str) -> bytes:
    """The bytecode magic number of the runtime's Python."""
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    answer = subprocess.run([runtime_python(version), "-c", code], capture_output=True, text=True)
    return bytes.fromhex(answer.stdout)


def pyc_problems(folder: Path, version: str) -> list[str]:
    """Every .py without a .pyc that the runtime's Python would use as it is, unchecked."""
    tag = f"cpython-{version.replace('.', '')}"
    magic = magic_of(version)
    problems = []
    for source in folder.rglob("*.py"):
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not cached.exists():
            problems.append(f"{source.relative_to(folder)}: no {cached.name}")
            continue
        header = cached.read_bytes()[:16]
        if header[:4] != magic:
            problems.append(f"{source.relative_to(folder)}: compiled for another Python")
        flags = int.from_bytes(header[4:8], "little")
        if flags != 0b01:  # hash-based (bit 0), not checked against the source (bit 1)
            problems.append(f"{source.relative_to(folder)}: flags {flags:#b}, not unchecked-hash")
    return problems


def test_every_function_artifact_holds_the_function_package_alone(
    built: Path, built_template: dict
) -> None:
    for logical_id in functions_of(built_template):
        folder = built / logical_id
        top = sorted(p.name for p in folder.iterdir())
        assert top == sorted([*HANDLER_MODULES, "__pycache__", "funcmart"]), (logical_id, top)
        for path in folder.rglob("*.py"):
            text = path.read_text()
            for marker in HOST_MARKERS:
                assert marker not in text, f"{logical_id}: {path.name} mentions {marker}"


def sourceless_problems(folder: Path, version: str) -> list[str]:
    """A layer ships bytecode in place of sources: no .py, no __pycache__, and every .pyc
    compiled for the runtime's Python."""
    magic = magic_of(version)
    problems = [f"{p.relative_to(folder)}: a source" for p in folder.rglob("*.py")]
    problems += [f"{p.relative_to(folder)}: a cache" for p in folder.rglob("__pycache__")]
    for compiled in folder.rglob("*.pyc"):
        if compiled.read_bytes()[:4] != magic:
            problems.append(f"{compiled.relative_to(folder)}: compiled for another Python")
    if not any(folder.rglob("*.pyc")):
        problems.append("no bytecode at all")
    return problems


def test_every_function_carries_unchecked_bytecode_for_the_runtime(
    built: Path, built_template: dict
) -> None:
    version = runtime_version(built_template)
    for logical_id in functions_of(built_template):
        assert pyc_problems(built / logical_id, version) == [], logical_id


def test_every_layer_carries_bytecode_for_the_runtime_in_place_of_sources(
    built: Path, built_template: dict
) -> None:
    version = runtime_version(built_template)
    for layer in LAYERS:
        assert sourceless_problems(built / layer, version) == [], layer


def test_the_dependencies_layer_leaves_out_what_the_runtime_provides(built: Path) -> None:
    layer = built / "Dependencies" / "python"
    assert (layer / "pydantic").is_dir()
    assert (layer / "pynamodb").is_dir()
    for name in RUNTIME_PROVIDED:
        assert not (layer / name).exists(), name
    for marker in ("funcmart", "funcmart_hosts", "jwt", "yaml", "functions_framework"):
        assert not (layer / marker).exists(), marker


def layers_of(built_template: dict, resource: dict) -> list[str]:
    """The layers a function uses: the Globals' and its own (SAM appends the lists)."""
    names = [
        *(built_template["Globals"]["Function"].get("Layers") or []),
        *(resource["Properties"].get("Layers") or []),
    ]
    return [name for n in names for name in _layer_names(n)]


def _layer_names(entry: Any) -> list[str]:
    """`{"Ref": Layer}`, or both branches of `{"Fn::If": [condition, a, b]}` (a layer used
    under a condition counts as used: its size with the others must fit); AWS::NoValue is
    none."""
    if isinstance(entry, dict) and "Fn::If" in entry:
        return [name for branch in entry["Fn::If"][1:] for name in _layer_names(branch)]
    name = str(entry.get("Ref") if isinstance(entry, dict) else getattr(entry, "value", entry))
    return [] if name == "AWS::NoValue" else [name]


def test_every_function_unpacks_to_at_most_30_mb_with_its_layers(
    built: Path, built_template: dict
) -> None:
    sizes = {layer: size_of(built / layer) for layer in LAYERS}
    for logical_id, resource in functions_of(built_template).items():
        layers = layers_of(built_template, resource)
        assert "Dependencies" in layers, f"{logical_id} uses no dependencies layer"
        total = size_of(built / logical_id) + sum(sizes.get(name, 0) for name in layers)
        assert total <= MAX_UNPACKED, f"{logical_id}: {total / 2**20:.1f} MiB unpacked"


def test_only_the_functions_that_pay_carry_the_stripe_sdk(
    built: Path, built_template: dict
) -> None:
    assert (built / "StripeSdk" / "python" / "stripe").is_dir()
    assert not (built / "Dependencies" / "python" / "stripe").exists()
    paying = {
        lid
        for lid, resource in functions_of(built_template).items()
        if "StripeSdk" in layers_of(built_template, resource)
    }
    assert paying == {
        "ProcessOrder",
        "CancelOrder",
        "RetryOrder",
        "CancelStuckOrder",
        "ResolveOrder",
    }


def test_every_handler_imports_from_bytecode_alone_as_lambda_loads_it(
    built: Path, built_template: dict, tmp_path: Path
) -> None:
    """Each source file of the function package and the layer is replaced by one that raises:
    the handlers still import, so the runtime never reads (or compiles) a source file."""
    version = runtime_version(built_template)
    task, opt = tmp_path / "task", tmp_path / "opt"
    shutil.copytree(built / "Dependencies" / "python", opt)
    shutil.copytree(built / "StripeSdk" / "python", opt, dirs_exist_ok=True)
    runtime = tmp_path / "runtime"  # what the Lambda runtime provides, from this environment
    runtime.mkdir()
    site = Path(importlib.util.find_spec("botocore").origin).parents[1]  # type: ignore[union-attr,arg-type]
    for name in (*RUNTIME_PROVIDED, "six.py"):
        (runtime / name).symlink_to(site / name)
    probe = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(task)!r}, {str(opt)!r}, {str(runtime)!r}]\n"
        "assert callable(importlib.import_module(sys.argv[1]).handler), sys.argv[1]\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
    )
    for logical_id, resource in functions_of(built_template).items():
        if task.exists():
            shutil.rmtree(task)
        shutil.copytree(built / logical_id, task)
        for source in [*task.rglob("*.py"), *opt.rglob("*.py")]:
            source.write_text("raise ImportError('the source was read, not the bytecode')\n")
        module = str(resource["Properties"]["Handler"]).rsplit(".", 1)[0]
        # the Stripe SDK is imported on the first charge: import it here too where it ships
        extra = ["stripe"] if "StripeSdk" in layers_of(built_template, resource) else []
        env = {
            "PATH": os.environ["PATH"],
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "artifact-test",
            "AWS_SECRET_ACCESS_KEY": "artifact-test",
            "TABLE_NAME": "artifact-test",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "ORDER_PLACED_QUEUE_URL": "http://127.0.0.1:1/queue/placed",
            "ORDER_PAID_QUEUE_URL": "http://127.0.0.1:1/queue/paid",
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
        }
        # -S: no site-packages (only what the artifact, the layer and the runtime hold);
        # -B: write nothing, as on a read-only file system.
        result = subprocess.run(
            [runtime_python(version), "-S", "-B", "-c", probe, module, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{logical_id}: {result.stderr[-2000:]}"


def test_the_opentelemetry_layer_holds_the_sdk_and_no_exporter_stack(
    built: Path, built_template: dict
) -> None:
    layer = built / "OpenTelemetry" / "python" / "opentelemetry"
    assert (layer / "sdk" / "trace").is_dir()
    # redis-py would import the SDK's metrics part at every cold start; nothing else uses it
    assert not (layer / "sdk" / "metrics").exists()
    # spans go out as OTLP JSON over urllib: no protobuf, no requests, no gRPC
    for heavy in ("google", "requests", "grpc"):
        assert not (built / "OpenTelemetry" / "python" / heavy).exists(), heavy
    everyone = {
        lid: layers_of(built_template, resource)
        for lid, resource in functions_of(built_template).items()
    }
    assert all("OpenTelemetry" in layers for layers in everyone.values())
