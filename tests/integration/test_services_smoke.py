"""The session services answer: DynamoDB Local takes a table from template.yaml, Redis pings."""


def test_dynamodb_local_creates_the_template_table(dynamodb_client, table_name):
    desc = dynamodb_client.describe_table(TableName=table_name)["Table"]
    assert {i["IndexName"] for i in desc["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}


def test_redis_answers(redis_client):
    redis_client.set("k", "v")
    assert redis_client.get("k") == "v"
