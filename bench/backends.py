"""The services a benchmark runs against, all started here and stopped by pid: DynamoDB Local,
a redis-server of our own on a spare port (never the shared one), and moto's SQS in its own
process (so that its work does not share a GIL with anything measured)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import FUNCTIONS, ROOT, wait_until

sys.path.insert(0, str(FUNCTIONS))
from funcmart_hosts.local import services

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


@dataclass
class Backends:
    dynamodb: str
    sqs: str
    redis_url: str
    _stops: list[Any] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # name -> pid of each service

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()

    def env(self) -> dict[str, str]:
        """The environment of every process of a benchmark: these endpoints, dummy keys."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(CREDENTIALS, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
        env.update(
            AWS_ENDPOINT_URL_DYNAMODB=self.dynamodb,
            AWS_ENDPOINT_URL_SQS=self.sqs,
            REDIS_URL=self.redis_url,
            PYTHONPATH=os.pathsep.join([str(ROOT), str(FUNCTIONS)]),
        )
        return env

    def dynamodb_client(self) -> Any:
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.dynamodb, region_name=REGION, **_keys())

    def sqs_client(self) -> Any:
        import boto3

        return boto3.client("sqs", endpoint_url=self.sqs, region_name=REGION, **_keys())

    def make_table(self) -> str:
        from funcmart_hosts.gateway.template import load

        name = f"bench-{uuid.uuid4().hex[:8]}"
        client = self.dynamodb_client()
        client.create_table(**load(ROOT / "template.yaml").create_table_kwargs(name))
        client.get_waiter("table_exists").wait(TableName=name)
        return name


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def _moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", services.LOOPBACK, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    services.wait_for_port(port, 30, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def running(logs: Path) -> Iterator[Backends]:
    logs.mkdir(parents=True, exist_ok=True)
    stops: list[Any] = []
    try:
        ddb = services.start_dynamodb_local()
        stops.append(ddb.stop)
        redis = services.start_redis_server()
        stops.append(redis.stop)
        port = services.free_port()
        moto = _moto(port, logs / "moto.log")
        stops.append(lambda: _stop(moto))
        backends = Backends(ddb.url, f"http://{services.LOOPBACK}:{port}", redis.url, stops)
        backends.pids = {
            "DynamoDB Local": ddb.proc.pid,
            "Redis": redis.proc.pid,
            "moto (SQS)": moto.pid,
        }
        yield backends
    finally:
        while stops:
            with contextlib.suppress(Exception):
                stops.pop()()


@dataclass
class Platform:
    """A `bench._serve` process (gateway or consumers) and where it writes its logs."""

    proc: subprocess.Popen[bytes]
    url: str | None

    def stop(self) -> None:
        _stop(self.proc)


def serve(
    backends: Backends,
    table: str,
    logs: Path,
    *,
    mode: str,
    stack: str,
    functions: list[str] | None = None,
    parameters: dict[str, str] | None = None,
    cpus: set[int] | None = None,
    name: str = "platform",
    env: dict[str, str] | None = None,
    batch_size: int | None = None,
    pollers: int | None = None,
) -> Platform:
    ready = logs / f"{name}-{uuid.uuid4().hex[:6]}.ready"
    spec = {
        "mode": mode,
        "stack": stack,
        "dynamodb_endpoint": backends.dynamodb,
        "sqs_endpoint": backends.sqs,
        "redis_url": backends.redis_url,
        "table": table,
        "functions": functions,
        "parameters": parameters or {},
        "ready_file": str(ready),
        "batch_size": batch_size,
        "pollers": pollers,
    }
    with (logs / f"{name}.out").open("ab") as out, (logs / f"{name}.err").open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench._serve", json.dumps(spec)],
            cwd=ROOT,
            env={**backends.env(), **(env or {})},
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, 120, f"{name} ready")
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {logs / name}.err")
        time.sleep(0.05)
        info = json.loads(ready.read_text())
    except BaseException:
        _stop(proc)
        raise
    return Platform(proc, info.get("url"))
