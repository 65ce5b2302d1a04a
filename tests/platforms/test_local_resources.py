"""Each function gets the environment the template gives it, pointed at the local resources."""

import textwrap

import pytest

from funcmart.settings import SettingsError
from funcmart_hosts.gateway import template
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.provision import creation_order, queue_attributes
from funcmart_hosts.local.resources import (
    Deployment,
    QueueRef,
    ResolutionError,
    default_jwt_config,
)

TEMPLATE = textwrap.dedent(
    """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      RedisUrl: {Type: String, Default: "redis://prod:6379/0"}
      Stage: {Type: String, Default: prod}
      Issuer: {Type: String, Default: "https://issuer.example/"}
    Globals:
      Function:
        Timeout: 10
        MemorySize: 256
        Environment:
          Variables:
            TABLE_NAME: !Ref Table
            REDIS_URL: !Ref RedisUrl
            STAGE: !Ref Stage
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth:
            DefaultAuthorizer: Jwt
            Authorizers:
              Jwt:
                IdentitySource: $request.header.Authorization
                JwtConfiguration:
                  issuer: !Ref Issuer
                  audience: [aud-1, aud-2]
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      Dlq:
        Type: AWS::SQS::Queue
      Work:
        Type: AWS::SQS::Queue
        Properties:
          VisibilityTimeout: 60
          RedrivePolicy:
            deadLetterTargetArn: !GetAtt Dlq.Arn
            maxReceiveCount: 3
      Orders:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true, ContentBasedDeduplication: true}
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          Handler: worker.handler
          Timeout: 30
          Environment:
            Variables:
              WORK_QUEUE_URL: !Ref Work
              WORK_QUEUE_ARN: !GetAtt Work.Arn
              DLQ_NAME: !GetAtt Dlq.QueueName
              WHERE: !Sub "${AWS::Region}/${Table}/${Stage}/${!Literal}"
              JOINED: !Join ["-", [a, !Ref Stage]]
              STAGE: overridden-by-function
          Events:
            Jobs:
              Type: SQS
              Properties:
                Queue: !GetAtt Work.Arn
                BatchSize: 5
                FunctionResponseTypes: [ReportBatchItemFailures]
            Tick:
              Type: Schedule
              Properties: {Schedule: rate(5 minutes)}
    """
)


@pytest.fixture
def tpl(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return template.load(path)


def deployment(tpl, **settings):
    s = LocalSettings(stack_name="t", **settings)
    d = Deployment(
        tpl, s, "redis://127.0.0.1:7000/0", "http://127.0.0.1:8000", "http://127.0.0.1:9000"
    )
    for lid in tpl.queues:
        name = d.name(lid)
        d.queues[lid] = QueueRef(lid, name, f"http://sqs/123456789012/{name}", d.arn("sqs", name))
    return d


def test_globals_then_function_variables_resolved_locally(tpl):
    env = deployment(tpl).function_env(tpl.functions["Worker"])
    assert env["TABLE_NAME"] == "t-Table"
    assert env["STAGE"] == "overridden-by-function"
    assert env["WORK_QUEUE_URL"] == "http://sqs/123456789012/t-Work"
    assert env["WORK_QUEUE_ARN"] == "arn:aws:sqs:us-east-1:123456789012:t-Work"
    assert env["DLQ_NAME"] == "t-Dlq"
    assert env["WHERE"] == "us-east-1/t-Table/prod/${Literal}"
    assert env["JOINED"] == "a-prod"


def test_local_endpoints_and_redis_replace_the_templates(tpl):
    env = deployment(tpl).function_env(tpl.functions["Worker"])
    assert env["REDIS_URL"] == "redis://127.0.0.1:7000/0"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:8000"
    assert env["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:9000"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "t-Worker"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"


def test_parameter_overrides_and_resource_names(tpl):
    d = deployment(tpl, parameters={"Stage": "dev"}, names={"Table": "my-table"})
    env = d.function_env(tpl.functions["Worker"])
    assert env["TABLE_NAME"] == "my-table"
    assert env["JOINED"] == "a-dev"
    with pytest.raises(ResolutionError, match="Nope"):
        deployment(tpl, parameters={"Nope": "x"}).refs()


def test_fifo_queues_get_the_fifo_suffix(tpl):
    assert deployment(tpl).name("Orders") == "t-Orders.fifo"


def test_an_unknown_reference_names_the_function_and_variable(tpl):
    spec = tpl.functions["Worker"]
    broken = template.Function(
        **{**spec.__dict__, "environment": {"X": template._Tag("Ref", "Missing")}}
    )
    with pytest.raises(ResolutionError, match="Worker: cannot resolve X"):
        deployment(tpl).function_env(broken)


def test_event_sources_and_function_settings_are_parsed(tpl):
    fn = tpl.functions["Worker"]
    assert fn.timeout == 30
    assert fn.memory_size == 256
    (source,) = fn.queues
    assert (source.queue, source.batch_size, source.report_batch_item_failures) == ("Work", 5, True)
    (tick,) = fn.schedules
    assert tick.every_seconds == 300
    assert tick.name == "Tick"


def test_dead_letter_queues_are_created_first_with_the_redrive_policy(tpl):
    order = creation_order(tpl.queues)
    assert order.index("Dlq") < order.index("Work")
    attrs = queue_attributes(tpl.queues["Work"], {}, "arn:dlq")
    assert attrs["VisibilityTimeout"] == "60"
    assert attrs["RedrivePolicy"] == '{"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 3}'
    fifo = queue_attributes(tpl.queues["Orders"], {}, None)
    assert fifo == {"FifoQueue": "true", "ContentBasedDeduplication": "true"}


def test_jwt_authorizer_comes_from_the_template(tpl):
    config = default_jwt_config(tpl, LocalSettings())
    assert config.issuer == "https://issuer.example/"
    assert config.audiences == ("aud-1", "aud-2")
    assert config.header == "authorization"


def test_the_real_template_resolves_for_every_function():
    tpl = template.load()
    d = deployment(tpl)
    for fn in tpl.functions.values():
        env = d.function_env(fn)
        assert env["TABLE_NAME"] == "t-Table"
        assert env["REDIS_URL"] == "redis://127.0.0.1:7000/0"
    config = default_jwt_config(tpl, LocalSettings())
    assert (config.issuer, config.audiences) == ("https://funcmart.local/", ("funcmart",))


def test_settings_come_from_arguments_then_environment_then_defaults():
    env = {
        "FUNCMART_LOCAL_PORT": "4000",
        "AWS_ENDPOINT_URL": "http://x",
        "REDIS_URL": "redis://r/1",
    }
    s = LocalSettings.load(env, port=5000)
    assert s.port == 5000
    assert s.dynamodb_endpoint == s.sqs_endpoint == "http://x"
    assert s.redis_url == "redis://r/1"
    assert LocalSettings.load({}).port == 3000
    with pytest.raises(SettingsError):
        LocalSettings.load({"FUNCMART_LOCAL_PORT": "abc"})
    with pytest.raises(SettingsError):
        LocalSettings.load({"FUNCMART_DEV_JWT_SECRET": "short"})
