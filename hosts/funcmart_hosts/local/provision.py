"""Create the template's tables and queues on a local endpoint, idempotently.

Queues are created dead-letter targets first, so that every RedrivePolicy can name an existing
queue, with the attributes the template gives them (VisibilityTimeout, FifoQueue, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from funcmart_hosts.gateway.template import Queue, Template, resolve
from funcmart_hosts.local.resources import QueueRef

log = logging.getLogger("local-platform")

# CloudFormation properties of AWS::SQS::Queue that are SQS queue attributes of the same name.
# KMS settings are left out: local endpoints have no keys to encrypt with.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)
_IMMUTABLE = {"FifoQueue"}


def ensure_table(client: Any, tpl: Template, logical_id: str, name: str) -> bool:
    """Create the table as the template defines it unless it exists; True when created."""
    try:
        client.describe_table(TableName=name)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    try:
        client.create_table(**tpl.create_table_kwargs(name, logical_id))
    except ClientError as exc:  # created meanwhile by another process
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    ttl = tpl.ttl_attribute(logical_id)
    if ttl:
        try:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )
        except ClientError as exc:  # some emulators do not implement TTL; nothing depends on it
            log.debug("TTL not enabled on %s: %s", name, exc)
    return True


def creation_order(queues: Mapping[str, Queue]) -> list[str]:
    """Logical ids with every dead-letter target before the queues that redrive to it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(lid: str) -> None:
        if lid in order:
            return
        if lid in visiting:
            raise ValueError(f"queues redrive to each other in a cycle through {lid}")
        visiting.add(lid)
        target = queues[lid].dead_letter_target
        if target is not None:
            if target not in queues:
                raise ValueError(f"{lid} redrives to {target}, which is not an AWS::SQS::Queue")
            visit(target)
        visiting.discard(lid)
        order.append(lid)

    for lid in queues:
        visit(lid)
    return order


def queue_attributes(
    queue: Queue, refs: Mapping[str, str], dead_letter_arn: str | None
) -> dict[str, str]:
    """SQS attributes (all strings) from the template's queue properties."""
    attrs = {
        name: resolve(queue.properties[name], dict(refs))
        for name in _QUEUE_ATTRIBUTES
        if name in queue.properties
    }
    if queue.dead_letter_target is not None:
        if dead_letter_arn is None:
            raise ValueError(f"{queue.logical_id}: its dead-letter queue does not exist yet")
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": queue.max_receive_count}
        )
    allow = queue.properties.get("RedriveAllowPolicy")
    if isinstance(allow, dict):
        attrs["RedriveAllowPolicy"] = json.dumps(allow)
    return attrs


def ensure_queues(
    client: Any, tpl: Template, names: Mapping[str, str], refs: Mapping[str, str]
) -> dict[str, QueueRef]:
    """Create (or update) every queue of the template; returns them by logical id."""
    made: dict[str, QueueRef] = {}
    for lid in creation_order(tpl.queues):
        queue = tpl.queues[lid]
        dlq = made[queue.dead_letter_target].arn if queue.dead_letter_target else None
        attrs = queue_attributes(queue, refs, dlq)
        try:
            url = client.create_queue(QueueName=names[lid], Attributes=attrs)["QueueUrl"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
            # It exists with other attributes (an earlier template): bring it up to date.
            url = client.get_queue_url(QueueName=names[lid])["QueueUrl"]
            mutable = {k: v for k, v in attrs.items() if k not in _IMMUTABLE}
            if mutable:
                client.set_queue_attributes(QueueUrl=url, Attributes=mutable)
        made[lid] = _ref(client, lid, names[lid], url)
    return made


def find_queues(client: Any, tpl: Template, names: Mapping[str, str]) -> dict[str, QueueRef]:
    """Look up queues that must exist already (a consumer that does not provision)."""
    found = {}
    for lid in tpl.queues:
        try:
            url = client.get_queue_url(QueueName=names[lid])["QueueUrl"]
        except ClientError as exc:
            raise LookupError(
                f"queue {names[lid]} ({lid}) does not exist on the SQS endpoint; start `dev` "
                "first or let the consumer provision it"
            ) from exc
        found[lid] = _ref(client, lid, names[lid], url)
    return found


def _ref(client: Any, lid: str, name: str, url: str) -> QueueRef:
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return QueueRef(logical_id=lid, name=name, url=url, arn=attrs["Attributes"]["QueueArn"])
