"""The HTTP contract: request and response schemas (pydantic), shared by every platform."""
