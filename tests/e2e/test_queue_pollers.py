"""Queue pollers and schedules from a template, against moto's SQS.

A throwaway template in tmp_path: a queue with a dead-letter queue (maxReceiveCount 2), a
worker that reports partial failures, a flaky worker that raises on first delivery, and a
scheduled function. The handlers append what they saw to a JSON-lines file named in their
environment, which also proves the environment is in place at cold start.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsModel

from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.platform import LocalPlatform

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    CodeUri: .
    Timeout: 5
    Environment:
      Variables:
        SEEN_FILE: {seen}
Resources:
  JobsDlq:
    Type: AWS::SQS::Queue
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt JobsDlq.Arn
        maxReceiveCount: 2
  Retries:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: worker.handler
      Environment:
        Variables:
          JOBS_QUEUE_URL: !Ref Jobs
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  Flaky:
    Type: AWS::Serverless::Function
    Properties:
      Handler: worker.flaky
      Events:
        Retries:
          Type: SQS
          Properties:
            Queue: !GetAtt Retries.Arn
            BatchSize: 10
  Ticker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: worker.tick
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 hour)
"""

HANDLERS = '''
"""Test handlers: record every delivery; fail on "poison"; raise on a first delivery."""
import json
import os

SEEN = os.environ["SEEN_FILE"]  # read at cold start, as settings are
QUEUE_URL = os.environ.get("JOBS_QUEUE_URL")


def _record(kind, event):
    with open(SEEN, "a") as fh:
        fh.write(json.dumps({"kind": kind, "event": event, "queue": QUEUE_URL}) + "\\n")


def handler(event, context):
    _record("worker", event)
    failed = [r["messageId"] for r in event["Records"] if r["body"] == "poison"]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def flaky(event, context):
    _record("flaky", event)
    if any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in event["Records"]):
        raise RuntimeError("first delivery always fails")


def tick(event, context):
    _record("tick", event)
'''


def seen(path: Path, kind: str) -> list[dict]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line for line in lines if line["kind"] == kind]


def wait_until(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def consumer(tmp_path, moto_endpoint):
    seen_file = tmp_path / "seen.jsonl"
    (tmp_path / "template.yaml").write_text(TEMPLATE.format(seen=seen_file))
    (tmp_path / "worker.py").write_text(textwrap.dedent(HANDLERS))
    settings = LocalSettings(
        template_path=tmp_path / "template.yaml",
        stack_name=f"poll-{uuid.uuid4().hex[:8]}",
        dynamodb_endpoint=moto_endpoint,
        sqs_endpoint=moto_endpoint,
        redis_url="redis://127.0.0.1:1/0",  # nothing here uses Redis: the embedded one will do
        schedule_every=0.3,
    )
    platform = LocalPlatform(settings, serve_http=False, embedded=False)
    return platform, seen_file


def test_partial_failures_delete_only_successes_and_poison_reaches_the_dlq(consumer):
    platform, seen_file = consumer
    with platform:
        sqs = boto3.client("sqs", endpoint_url=platform.settings.sqs_endpoint)
        jobs, dlq = platform.deployment.queues["Jobs"], platform.deployment.queues["JobsDlq"]
        # GIVEN three good messages and a poison one
        bodies = ["ok-1", "poison", "ok-2", "ok-3"]
        sqs.send_message_batch(
            QueueUrl=jobs.url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
        )
        # WHEN the poller runs THEN the poison lands in the dead-letter queue ...
        moved = wait_until(
            lambda: sqs.receive_message(QueueUrl=dlq.url, WaitTimeSeconds=1).get("Messages"),
            what="the poison message in the DLQ",
        )
        assert [m["Body"] for m in moved] == ["poison"]
        time.sleep(1.5)  # past the visibility timeout: anything not deleted would be back
        attrs = sqs.get_queue_attributes(QueueUrl=jobs.url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    # ... after two failed deliveries, while each good message was processed exactly once
    records = [r for line in seen(seen_file, "worker") for r in line["event"]["Records"]]
    by_body: dict[str, list[str]] = {}
    for r in records:
        by_body.setdefault(r["body"], []).append(r["attributes"]["ApproximateReceiveCount"])
    assert by_body == {"ok-1": ["1"], "ok-2": ["1"], "ok-3": ["1"], "poison": ["1", "2"]}
    first = seen(seen_file, "worker")[0]
    SqsModel.model_validate(first["event"])
    assert first["queue"] == jobs.url  # !Ref Jobs resolved to the local queue URL
    assert {r["eventSourceARN"] for r in records} == {jobs.arn}


def test_a_handler_that_raises_gets_the_whole_batch_again(consumer):
    platform, seen_file = consumer
    with platform:
        sqs = boto3.client("sqs", endpoint_url=platform.settings.sqs_endpoint)
        retries = platform.deployment.queues["Retries"]
        sqs.send_message_batch(
            QueueUrl=retries.url,
            Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}],
        )

        def delivered_twice():
            counts: dict[str, set[str]] = {}
            for line in seen(seen_file, "flaky"):
                for r in line["event"]["Records"]:
                    counts.setdefault(r["body"], set()).add(
                        r["attributes"]["ApproximateReceiveCount"]
                    )
            return counts if counts == {"a": {"1", "2"}, "b": {"1", "2"}} else None

        wait_until(delivered_twice, what="both messages delivered a second time")
        wait_until(
            lambda: (
                sqs.get_queue_attributes(
                    QueueUrl=retries.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
                )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
                == "0"
            ),
            what="the second delivery deleted",
        )


def test_schedules_fire_eventbridge_events(consumer):
    platform, seen_file = consumer
    with platform:
        ticks = wait_until(lambda: len(seen(seen_file, "tick")) >= 2, what="two ticks")
    assert ticks
    event = seen(seen_file, "tick")[0]["event"]
    EventBridgeModel.model_validate(event)
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"][0].startswith("arn:aws:events:")
