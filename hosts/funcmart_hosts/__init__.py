"""funcmart's hosts: what runs the functions where there is no AWS Lambda.

Never shipped inside a function's artifact. The function package (`funcmart` and the handler
modules) knows nothing of this package; these modules translate requests, CloudEvents and
timers into the events Lambda would deliver and hand them to the unchanged handlers:

- `gateway`: API Gateway and event-source emulation shared by every host: payload v2 events
  and responses, SQS batches, scheduled events, routes read from template.yaml, the JWT
  authorizer, and the `Edge` that puts them together for one request;
- `knative`: the ASGI host (uvicorn) serving one function per Knative Service;
- `local`: the local platform behind `make dev`, `make consume` and `make invoke`;
- `openapi`: the OpenAPI document written from the functions' own routes and models.
"""
