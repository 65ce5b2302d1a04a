"""`dev` creates the template's table and queues, and running it again changes nothing."""

from __future__ import annotations

import json
import textwrap
import uuid

import boto3
import pytest

from funcmart_hosts.gateway import template
from funcmart_hosts.local import provision
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.resources import Deployment

QUEUES = textwrap.dedent(
    """
    Resources:
      OrdersDlq:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true, MessageRetentionPeriod: 1209600}
      Orders:
        Type: AWS::SQS::Queue
        Properties:
          FifoQueue: true
          ContentBasedDeduplication: true
          VisibilityTimeout: 60
          RedrivePolicy: {deadLetterTargetArn: !GetAtt OrdersDlq.Arn, maxReceiveCount: 5}
    """
)


def test_fifo_queues_and_their_dead_letter_queue_are_created_once(tmp_path, moto_endpoint):
    path = tmp_path / "template.yaml"
    path.write_text(QUEUES)
    tpl = template.load(path)
    settings = LocalSettings(template_path=path, stack_name=f"prov-{uuid.uuid4().hex[:8]}")
    d = Deployment(tpl, settings, "redis://unused", None, moto_endpoint)
    names = {lid: d.name(lid) for lid in tpl.queues}
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)

    first = provision.ensure_queues(sqs, tpl, names, d.refs())
    again = provision.ensure_queues(sqs, tpl, names, d.refs())

    assert first == again
    assert first["Orders"].name.endswith("-Orders.fifo")
    attrs = sqs.get_queue_attributes(QueueUrl=first["Orders"].url, AttributeNames=["All"])
    attrs = attrs["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"
    assert attrs["VisibilityTimeout"] == "60"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": first["OrdersDlq"].arn,
        "maxReceiveCount": 5,
    }


@pytest.mark.dynamodb
def test_the_table_is_created_from_the_template_once(dynamodb_client):
    tpl = template.load()
    name = f"funcmart-prov-{uuid.uuid4().hex[:8]}"
    try:
        assert provision.ensure_table(dynamodb_client, tpl, "Table", name) is True
        assert provision.ensure_table(dynamodb_client, tpl, "Table", name) is False
        desc = dynamodb_client.describe_table(TableName=name)["Table"]
        assert {i["IndexName"] for i in desc["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    finally:
        dynamodb_client.delete_table(TableName=name)
