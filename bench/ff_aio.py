"""funcmart's Knative host served the way the design card first named: functions-framework's
async mode (`functions_framework.aio`, Starlette on uvicorn) in front of the same `Runtime`
(edge, event, the function's async path) as the shipped host. Measured beside the shipped
bare ASGI host by `bench.peers`; never shipped.

`python -m bench.ff_aio --host 127.0.0.1 --port N`, with the Knative host's environment.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


async def http(request: Any) -> Any:
    """functions-framework's HTTP signature on Starlette: the request through the host."""
    from starlette.responses import Response

    from funcmart_hosts.gateway.events import HttpRequest
    from funcmart_hosts.knative.host import client_address, runtime
    from funcmart_hosts.serving import header, target_of

    scope = request.scope
    rt = runtime()
    peer = request.client.host if request.client else "127.0.0.1"
    outcome = await rt.serve_http(
        HttpRequest(
            method=request.method,
            target=target_of(scope),
            headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]],
            body=await request.body(),
            source_ip=client_address(peer, header(scope, b"x-forwarded-for"), rt.settings),
        )
    )
    answer = Response(outcome.response.body, status_code=outcome.response.status)
    for name, value in outcome.response.headers:
        answer.headers.append(name, value)
    return answer


def main() -> None:
    import uvicorn
    from functions_framework.aio import create_asgi_app

    from funcmart_hosts.knative.host import runtime

    parser = argparse.ArgumentParser(prog="python -m bench.ff_aio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    runtime()  # the function loaded before the port opens, as the shipped host does
    app = create_asgi_app(target="http", source=__file__, signature_type="http")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
