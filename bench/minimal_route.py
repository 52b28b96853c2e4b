"""Benchmark only: the least a FastAPI route can do with a delivery, for ``make bench``.

``POST /notifications`` reads the body and answers 202, nothing else, on the
hook's server stack (uvicorn with httptools and uvloop): what FastAPI itself
costs per request, beside which ``bench/run.py`` sets the hook's own CPU.

    PORT=9301 python -m bench.minimal_route
"""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    """A route that reads the body and answers 202; and GET /healthz."""
    # As the hook's (hook.app.NO_TELEMETRY): no OpenTelemetry lookups per request.
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/notifications", status_code=202)
    async def notify(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(app: FastAPI) -> int:
    """Serve ``app`` on 127.0.0.1:PORT with the hook's stack (httptools, uvloop), quietly."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )
    return 0


def main() -> int:
    """Serve it on PORT."""
    return serve(create_app())


if __name__ == "__main__":
    sys.exit(main())
