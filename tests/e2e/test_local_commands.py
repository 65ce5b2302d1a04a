"""The commands as a developer runs them: `make dev` on embedded defaults, `make invoke`,
`make token`, each as its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from funcmart_hosts.local.services import free_port

CLI = [sys.executable, "-m", "funcmart_hosts.local"]


def clean_env(**extra: str) -> dict[str, str]:
    """No endpoints set, so the commands fall back to their embedded services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(extra)
    return env


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process exited early with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_dev_runs_on_embedded_defaults_and_stops_cleanly_on_sigterm(tmp_path: Path):
    # GIVEN no DynamoDB or SQS endpoint, and nothing answering at REDIS_URL
    port, dead = free_port(), free_port()
    env = clean_env(REDIS_URL=f"redis://127.0.0.1:{dead}/0")
    out, err = (tmp_path / "out.log").open("wb"), (tmp_path / "err.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "dev", "--port", str(port), "--seed"], stdout=out, stderr=err, env=env
    )
    try:
        # WHEN the catalog is asked for
        resp = wait_for_http(f"http://127.0.0.1:{port}/products?limit=100", proc)
        # THEN the seeded demo products come back, through embedded moto and fakeredis
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert len(items) == 30
        assert {p["category"] for p in items} == {"books", "games", "music"}
        one = httpx.get(f"http://127.0.0.1:{port}/products/{items[0]['id']}", timeout=5)
        assert one.status_code == 200
        # AND SIGTERM stops it cleanly
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()
        err.close()
    printed = (tmp_path / "out.log").read_text()
    logged = (tmp_path / "err.log").read_text()
    assert "embedded fakeredis" in printed
    assert "embedded moto server" in printed
    assert "GET     /products" in printed
    assert "make token ROLE=admin" in printed
    assert '"GET /products?limit=100 HTTP/1.1" 200' in logged  # the access log
    assert "SIGTERM received" in logged


def test_invoke_prints_the_response_and_only_the_response(tmp_path: Path):
    event = {
        "version": "2.0",
        "routeKey": "GET /products",
        "rawPath": "/products",
        "rawQueryString": "limit=5",
        "headers": {"host": "localhost"},
        "queryStringParameters": {"limit": "5"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": "GET",
                "path": "/products",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "requestId": "invoke-test",
            "routeKey": "GET /products",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    dead = free_port()
    done = subprocess.run(
        [*CLI, "invoke", "ListProducts", str(path)],
        capture_output=True,
        env=clean_env(REDIS_URL=f"redis://127.0.0.1:{dead}/0"),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    response = json.loads(done.stdout)  # stdout is the response JSON and nothing else
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"items": [], "nextCursor": None}


def test_make_invoke_writes_the_response_alone_on_stdout_and_the_logs_on_stderr():
    # GIVEN a consumer whose message fails for good (its order does not exist), so it logs
    root = Path(__file__).resolve().parents[2]
    make = ["make", "--no-print-directory", "-C", str(root)]
    done = subprocess.run(
        [*make, "invoke", "FN=ProcessOrder", "EVENT=events/process_order.json"],
        capture_output=True,
        env=clean_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    # THEN stdout is the response JSON and nothing else; every log line is on stderr
    # (the message went to ProcessOrder's dead-letter queue at once: none is left to retry)
    response = json.loads(done.stdout)
    assert response == {"batchItemFailures": []}
    assert b"message failed for good; it is dead-lettered" in done.stderr
    assert b"message dead-lettered without retries" in done.stderr


def test_token_prints_a_token_the_gateway_accepts():
    from funcmart_hosts.gateway.auth import TokenVerifier
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.config import LocalSettings
    from funcmart_hosts.local.resources import default_jwt_config

    done = subprocess.run(
        [*CLI, "token", "--role", "admin", "--sub", "ops-1", "--ttl", "60"],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    token = done.stdout.decode().strip()
    settings = LocalSettings()
    verified = TokenVerifier(secret=settings.jwt_secret).verify(
        token, default_jwt_config(load(), settings)
    )
    assert verified.claims["sub"] == "ops-1"
    assert verified.claims["groups"] == ["admin"]
    assert verified.claims["exp"] - verified.claims["iat"] == 60


CONSUMER_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Inbox:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 5
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: reader.handler
      Environment:
        Variables:
          OUT: {out}
      Events:
        Inbox:
          Type: SQS
          Properties:
            Queue: !GetAtt Inbox.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
"""

READER = """
import os

OUT = os.environ["OUT"]


def handler(event, context):
    with open(OUT, "a") as fh:
        for record in event["Records"]:
            fh.write(record["body"] + "\\n")
    return {"batchItemFailures": []}
"""


def test_consume_runs_the_pollers_as_their_own_process(tmp_path: Path, moto_endpoint: str):
    import uuid

    import boto3

    out = tmp_path / "bodies.txt"
    (tmp_path / "template.yaml").write_text(CONSUMER_TEMPLATE.format(out=out))
    (tmp_path / "reader.py").write_text(READER)
    stack = f"consume-{uuid.uuid4().hex[:8]}"
    env = clean_env(
        AWS_ENDPOINT_URL_SQS=moto_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        FUNCMART_STACK_NAME=stack,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    log = (tmp_path / "consume.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, "consume", "--template", str(tmp_path / "template.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:  # the consumer creates the queue
            try:
                url = sqs.get_queue_url(QueueName=f"{stack}-Inbox")["QueueUrl"]
            except sqs.exceptions.QueueDoesNotExist:
                time.sleep(0.1)
        assert url, "the consumer did not create its queue"
        for i in range(7):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        while time.monotonic() < deadline:
            bodies = out.read_text().split() if out.exists() else []
            if len(bodies) >= 7:
                break
            time.sleep(0.1)
        assert sorted(out.read_text().split()) == [f"m{i}" for i in range(7)]
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - stopping < 5, "the consumer should stop within a long poll"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    print(f"consumer lifetime {time.monotonic() - started:.1f}s")
