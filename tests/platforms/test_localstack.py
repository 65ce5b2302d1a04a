"""localstack/: the ready hook, run with the AWS CLI against the embedded moto server, creates
the table and queues of template.yaml, and the functions' adapters work on what it made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from funcmart.bootstrap import Container
from funcmart.domain.orders import RequestedLine
from funcmart.services import orders
from funcmart.settings import Settings
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.template import ROOT
from tests.fakes import FakeMetrics
from tests.support.builders import add_product, customer, random_id

LOCALSTACK = ROOT / "localstack"
HOOK = LOCALSTACK / "init/ready.d/10-funcmart.sh"
TPL = template.load()
REGION = "us-east-1"


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> str:
    """Runs the hook once, under a stack name of its own, with the plain aws CLI."""
    aws = Path(sys.executable).parent / "aws"
    assert aws.exists(), "the AWS CLI (awscli, a dev dependency) is not installed in the venv"
    name = random_id("ls")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "FUNCMART_STACK_NAME": name,
        "PATH": f"{aws.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(HOOK)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"table {name}-Table ready" in done.stdout
    return name


def client(service: str, endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def test_the_hook_creates_the_table_as_the_template_defines_it(
    stack: str, moto_endpoint: str
) -> None:
    ddb = client("dynamodb", moto_endpoint)
    table = ddb.describe_table(TableName=f"{stack}-Table")["Table"]
    expected = TPL.create_table_kwargs(f"{stack}-Table")
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    for gsi in expected["GlobalSecondaryIndexes"]:
        assert indexes[gsi["IndexName"]]["KeySchema"] == gsi["KeySchema"]
        assert indexes[gsi["IndexName"]]["Projection"] == gsi["Projection"]
    ttl = ddb.describe_time_to_live(TableName=f"{stack}-Table")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == TPL.ttl_attribute()


def test_the_hook_creates_every_queue_with_its_redrive(stack: str, moto_endpoint: str) -> None:
    sqs = client("sqs", moto_endpoint)
    arns = {}
    for lid, queue in TPL.queues.items():
        url = sqs.get_queue_url(QueueName=f"{stack}-{lid}")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        arns[lid] = attrs["QueueArn"]
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if key in queue.properties:
                assert attrs[key] == str(queue.properties[key]), (lid, key)
        if queue.dead_letter_target:
            redrive = json.loads(attrs["RedrivePolicy"])
            assert int(redrive["maxReceiveCount"]) == queue.max_receive_count
            assert redrive["deadLetterTargetArn"].endswith(f":{stack}-{queue.dead_letter_target}")
        else:
            assert "RedrivePolicy" not in attrs


def test_the_functions_adapters_work_on_what_the_hook_made(stack: str, moto_endpoint: str) -> None:
    # GIVEN the functions' settings pointed at the hook's table and queue
    sqs = client("sqs", moto_endpoint)
    queue_url = sqs.get_queue_url(QueueName=f"{stack}-OrderPlacedQueue")["QueueUrl"]
    settings = Settings.load(
        {
            "TABLE_NAME": f"{stack}-Table",
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_REGION": REGION,
            "ORDER_PLACED_QUEUE_URL": queue_url,
        }
    )
    deps = Container(settings, metrics=FakeMetrics())
    # WHEN an order is placed through the real DynamoDB and SQS adapters
    pid = add_product(deps, stock=3)
    placed = orders.place_order(
        deps.order_ports,
        customer(),
        random_id("key-"),
        [RequestedLine(pid, 1)],
        "tok_ok",
        {"lines": [{"productId": pid, "quantity": 1}]},
        "corr-ls",
    )
    # THEN the stock moved in the table and OrderPlaced waits on the queue
    assert deps.products.get(pid).stock == 2
    got = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1)
    bodies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
    assert {
        "type": "OrderPlaced",
        "orderId": placed.body["id"],
        "correlationId": "corr-ls",
    } in bodies


def test_the_compose_file_mounts_the_hooks_and_runs_redis() -> None:
    compose = yaml.safe_load((LOCALSTACK / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"localstack", "redis"} <= set(services)
    mounts = [v.split(":")[0] for v in services["localstack"]["volumes"]]
    assert "./init/ready.d" in mounts
    assert (LOCALSTACK / "init/ready.d").is_dir()
    assert set(services["localstack"]["environment"]["SERVICES"].split(",")) >= {"dynamodb", "sqs"}
    assert os.access(HOOK, os.X_OK)
