"""DynamoDB through pynamodb: the single table and the repositories over it."""
