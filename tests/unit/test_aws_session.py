"""The process's botocore session (funcmart/adapters/aws.py): the clients it builds are the
clients botocore's own session builds, from the same data, without botocore's listing of
every service it has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import DataNotFoundError, UnknownServiceError

from funcmart.adapters.aws import ServiceLoader, new_session

# What the functions build clients for, and the kinds of file a client (or a paginator) reads.
SERVICES = ("dynamodb", "sqs", "secretsmanager")
KINDS = ("service-2", "endpoint-rule-set-1", "paginators-1")
REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1")


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)


def _loaders() -> tuple[Any, Any]:
    ours = new_session().get_component("data_loader")
    theirs = botocore.session.get_session().get_component("data_loader")
    return ours, theirs


@pytest.mark.usefixtures("no_aws_config")
def test_the_session_loads_what_botocore_loads_in_the_same_order() -> None:
    ours, theirs = _loaders()
    assert isinstance(ours, ServiceLoader)
    for service in SERVICES:
        for kind in KINDS:
            mine = ours.load_service_model(service, kind)
            assert mine == theirs.load_service_model(service, kind)
            assert json.dumps(mine) == json.dumps(theirs.load_service_model(service, kind))
    for name in ("endpoints", "partitions", "_retry", "sdk-default-configuration"):
        assert json.dumps(ours.load_data(name)) == json.dumps(theirs.load_data(name))
    # ... read into plain dicts, which keep the order too (botocore's own: OrderedDicts)
    assert type(ours.load_data("endpoints")["partitions"][0]) is dict


@pytest.mark.usefixtures("no_aws_config")
def test_an_unknown_service_or_version_fails_as_botocore_fails() -> None:
    ours, theirs = _loaders()
    for args in (("nosuchservice", "service-2"), ("dynamodb", "no-such-kind")):
        with pytest.raises(UnknownServiceError) as mine:
            ours.load_service_model(*args)
        with pytest.raises(UnknownServiceError) as botocores:
            theirs.load_service_model(*args)
        assert str(mine.value) == str(botocores.value)
    with pytest.raises(DataNotFoundError):
        ours.load_service_model("dynamodb", "service-2", "1999-01-01")


@pytest.mark.usefixtures("no_aws_config")
@pytest.mark.parametrize("region", REGIONS)
def test_its_clients_are_botocores_clients(region: str) -> None:
    ours, theirs = new_session(), botocore.session.get_session()
    for service in SERVICES:
        mine: Any = ours.create_client(service, region_name=region)
        botocores: Any = theirs.create_client(service, region_name=region)
        assert mine.meta.endpoint_url == botocores.meta.endpoint_url
        assert mine.meta.region_name == botocores.meta.region_name
        assert mine.meta.config.signature_version == botocores.meta.config.signature_version
        assert mine.meta.service_model.signing_name == botocores.meta.service_model.signing_name
        assert (
            mine.meta.service_model.operation_names == botocores.meta.service_model.operation_names
        )


@pytest.mark.usefixtures("no_aws_config")
def test_a_client_is_built_without_listing_every_service() -> None:
    session = new_session()
    loader = session.get_component("data_loader")

    def listing(type_name: str) -> list[str]:
        raise AssertionError(f"every service listed for {type_name}")

    loader.list_available_services = listing
    client: Any = session.create_client("dynamodb", region_name="us-east-1")
    assert client.meta.service_model.service_name == "dynamodb"


@pytest.mark.usefixtures("no_aws_config")
def test_aws_data_path_is_searched_first_as_botocore_searches_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a model of its own for SQS under AWS_DATA_PATH (as `aws configure add-model` puts)
    shipped = botocore.session.get_session().get_component("data_loader")
    version = shipped.determine_latest_version("sqs", "service-2")
    model = shipped.load_service_model("sqs", "service-2")
    model["metadata"]["serviceFullName"] = "Queues of our own"
    folder = tmp_path / "sqs" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    # WHEN a client is built
    client: Any = new_session().create_client("sqs", region_name="us-east-1")
    # THEN it is built from that model, as botocore's own session would
    assert client.meta.service_model.metadata["serviceFullName"] == "Queues of our own"
