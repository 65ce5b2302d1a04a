"""`make sam-env`: the env-vars file for `sam local invoke/start-api --env-vars` gives every
function what it needs to reach the host's services from SAM's container."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import urlparse

from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.template import ROOT
from tools.sam_env import env_vars

TPL = template.load()
HOOK_TABLE = json.loads((ROOT / "localstack/init/ready.d/table.json").read_text())["TableName"]


def test_every_function_gets_only_the_variables_it_declares() -> None:
    # SAM CLI takes a value from the file only for a variable the function declares in the
    # template; anything else in the file would be silently dropped.
    doc = env_vars(TPL)
    assert set(doc) == set(TPL.functions)
    for lid, values in doc.items():
        assert set(values) == set(TPL.functions[lid].environment), lid


def test_the_values_point_at_the_host_not_at_the_container() -> None:
    doc = env_vars(TPL, aws_endpoint="http://host.docker.internal:4566")
    for lid, values in doc.items():
        # The SDK would call real AWS without these.
        assert values["AWS_ENDPOINT_URL_DYNAMODB"] == "http://host.docker.internal:4566", lid
        assert values["AWS_ENDPOINT_URL_SQS"] == "http://host.docker.internal:4566", lid
        assert values["TABLE_NAME"] == HOOK_TABLE, lid  # not the logical id "Table"
        for key, value in values.items():
            host = urlparse(value).hostname if "://" in value else None
            assert host not in ("127.0.0.1", "localhost"), (lid, key, value)


def test_queue_urls_name_the_queues_the_hook_creates() -> None:
    doc = env_vars(TPL, aws_endpoint="http://host.docker.internal:4566", account_id="000000000000")
    urls = {v for values in doc.values() for k, v in values.items() if k.endswith("_QUEUE_URL")}
    assert urls, "no function publishes to a queue?"
    queue_names = {f"funcmart-{lid}" for lid in TPL.queues}
    for url in urls:
        assert url.startswith("http://host.docker.internal:4566/000000000000/"), url
        assert url.rsplit("/", 1)[1] in queue_names, url


def test_make_sam_env_writes_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "env-vars.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.sam_env", "--out", str(out), "--redis-url", "redis://r:1/0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    assert written == env_vars(TPL, redis_url="redis://r:1/0")
    assert "--env-vars" in done.stderr
