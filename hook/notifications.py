"""The routes the CMS calls: ``POST /notifications`` and ``POST /notifications/{token}``.

Each request is checked by the delivery guard (token, allowlist, rate
limit), then its raw body is read within the size limit, the body timeout
and the worker's byte budget, handed to the store (``hook/ingest.py``,
batched through ``sync.store_many``) and answered with the database's
receipt once it is committed. The body is never parsed here: every rule
lives in the database. The answer is written as bytes, with the database's
reasons text spliced in, so documenting the routes in ``/docs`` costs the
hot path nothing.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from hook.body_budget import BodyBudget
from hook.guard import DeliveryGuard, Refusal
from hook.ingest import Delivery, Receipt, Store, StoreError
from hook.log_limit import LogLimit

log = logging.getLogger("hook")


class Reason(BaseModel):
    """One data rule a delivery broke or touched (README, "Data rules")."""

    code: str = Field(examples=["cost.negative"])
    severity: Literal["error", "warning", "info"]
    field: str | None = Field(examples=["cost"])
    message: str = Field(examples=["cost must be 0 or more"])


class ReceiptAnswer(BaseModel):
    """The receipt of a stored delivery: its inbox row, its outcome and the reasons."""

    inbox_id: int | None = Field(
        description="The delivery's row in sync.inbox; null while it waits in the local spool."
    )
    status: Literal["applied", "ignored", "rejected", "pending", "spooled"] = Field(
        description="applied: merged into fragrances; ignored: nothing to change; rejected: "
        "kept in quarantine (see reasons); pending: stored, merged later; spooled: the database "
        "is down, the delivery is on the hook's disk and will be stored in order."
    )
    reasons: list[Reason]


class Problem(BaseModel):
    """An error answer: what happened and what to do."""

    detail: str


def _problem(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": Problem, "description": description, **extra}


ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {
        "model": ReceiptAnswer,
        "description": "Stored durably (committed, or fsynced in the spool while the database "
        "is down), not judged yet: status pending (or spooled) with no reasons. The database "
        "judges and applies it right after the answer; its outcome (applied, ignored, or "
        "rejected with reasons) is on its sync.inbox row, in sync.quarantine and on /status. "
        "A body that breaks the data rules is still stored and answered 202.",
    },
    403: _problem(
        "The sender's address is not in ALLOWED_NETWORKS, or the request came from a web "
        "page in a browser (Sec-Fetch-Site other than same-origin or none). Nothing was stored."
    ),
    404: _problem(
        "With NOTIFY_TOKEN: a missing or wrong token in the path (counted as not_found). "
        "Without it: a path with a token. Nothing was stored."
    ),
    408: _problem(
        "The body did not arrive within BODY_TIMEOUT of the headers (a wait for the "
        "worker's byte budget included). Nothing was stored."
    ),
    413: _problem("The body is larger than MAX_BODY_BYTES. Nothing was stored."),
    429: _problem(
        "The sender is over RATE_LIMIT_PER_SECOND. Nothing was stored; retry after a second.",
        headers={"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    ),
    431: _problem(
        "The request's headers are larger than MAX_HEADER_BYTES (answered before the route, "
        "and the connection closed). Nothing was stored."
    ),
    500: _problem("The database refused the delivery (see the hook's log). Nothing was stored."),
    503: _problem(
        "The database is unavailable and there is no spool (or it cannot be written). "
        "Nothing was stored: send it again."
    ),
}

BODY = {
    "requestBody": {
        "required": False,
        "description": "The CMS's change as it sent it: stored byte for byte and never parsed "
        "by the hook (the database judges it). In practice a JSON delta: fragrance_id plus "
        "the fields that changed, each with its new value.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "fragrance_id": {"type": "integer"},
                        "name": {"type": "string", "maxLength": 150},
                        "description": {"type": "string", "maxLength": 1024},
                        "cost": {"type": "number", "minimum": 0},
                        "forbidden": {"type": "boolean"},
                    },
                    "required": ["fragrance_id"],
                },
                "example": {
                    "fragrance_id": 3797,
                    "name": "ZoogenicHOOOOOOOOOOLAAA",
                    "description": "Produced from animals  blabla...",
                    "forbidden": True,
                },
            },
            "*/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def client_address(scope: dict[str, Any]) -> str | None:
    """The peer's IP address, or None when it is not one (a unix socket, a test client).

    An IPv4 peer of a dual-stack socket (``HOST=::`` with ``WORKERS`` above 1)
    arrives as ``::ffff:a.b.c.d``: it is judged and stored as ``a.b.c.d``, or
    no IPv4 network of ``ALLOWED_NETWORKS`` admits it.
    """
    client = scope.get("client")
    if not client:
        return None
    host = client[0]
    # A trusted proxy's X-Forwarded-For can make the host any text: only what
    # could be an address (45 characters, with room for a zone) is cached.
    return _cached_address(host) if len(host) <= 64 else _normal_address(host)


def _normal_address(host: str) -> str | None:
    """``host`` as an IP address in its normal text, or None when it is not one."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


#: Parsing the address cost 2% of the hook's own CPU per request (py-spy), and a
#: hook hears from few addresses (the CMS's, a proxy's).
_cached_address = functools.lru_cache(maxsize=4096)(_normal_address)


class _BodyTooLargeError(Exception):
    """The body is larger than the configured limit."""


class _ClientGoneError(Exception):
    """The client closed the connection before its whole body arrived."""


def _declared_size(value: bytes | None) -> int | None:
    """Content-Length as a number; None when absent or not all digits.

    Leading zeros are legal (``1*DIGIT``): thousands of them made ``int()``
    raise (Python's 4,300-digit limit) and the delivery a 500.
    """
    if value is None or not value.isdigit():
        return None
    digits = value.lstrip(b"0") or b"0"
    return int(digits) if len(digits) <= 18 else sys.maxsize


class JSONAnswer(Response):
    """A JSON answer built directly from its bytes (no rendering, no header checks)."""

    media_type = "application/json"

    def __init__(self, status: int, payload: bytes, headers: tuple[tuple[str, str], ...] = ()):
        """``payload`` is JSON already; ``headers`` are added as they are."""
        self.status_code = status
        self.body = payload
        self.background = None
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        ]


#: On an answer given before the body was read to its end: the rest of it would
#: otherwise be read as the connection's next request.
CLOSE = (("connection", "close"),)


def _problem_answer(
    status: int, detail: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    return JSONAnswer(status, json.dumps({"detail": detail}).encode(), headers)


def _refusal_answer(refusal: Refusal) -> Response:
    return _problem_answer(refusal.status, refusal.detail, refusal.headers)


class Deliveries:
    """What the routes need: the guard, the limits, the byte budget and the store."""

    def __init__(
        self,
        guard: DeliveryGuard,
        max_body_bytes: int,
        body_timeout: float,
        budget: BodyBudget,
        observe: Callable[[int, Receipt], None] | None = None,
        log_every: float = 10.0,
    ) -> None:
        """``observe`` is called with the size and receipt of each stored delivery."""
        self.guard = guard
        self.max_body_bytes = max_body_bytes
        #: A client that has not sent its whole body by then gets 408 (slow-client guard).
        self.body_timeout = body_timeout
        self.budget = budget
        self.observe = observe
        #: Set by the app's lifespan before it serves.
        self.store: Store | None = None
        self._log = LogLimit(log, log_every)

    async def deliver(self, request: Request, token: str | None) -> Response:
        """Check, read, store, answer: 202 with the receipt, or the refusal."""
        scope = request.scope
        client = client_address(scope)
        headers = dict(scope["headers"])
        refusal = self.guard.refuse(
            token,
            client,
            headers.get(b"sec-fetch-site"),
            headers.get(b"host"),
            headers.get(b"origin"),
        )
        if refusal is not None:
            return _refusal_answer(refusal)
        size = _declared_size(headers.get(b"content-length"))
        if size is not None and size > self.max_body_bytes:
            return self._too_large(client)
        reserved = self.max_body_bytes if size is None else size
        # BODY_TIMEOUT runs from the headers, the wait for the budget included: from
        # its turn, the n-th of many requests declaring large bodies and sending none
        # held its connection n x BODY_TIMEOUT (hours at MAX_CONNECTIONS), and the
        # CMS's deliveries waited for a connection behind them (hostile review).
        give_up = asyncio.get_running_loop().time() + self.body_timeout
        # Past the budget, wait here (before reading) instead of refusing at once. Only
        # a wait pays for a timer: a CMS delta is small and never waits.
        if not self.budget.try_reserve(reserved):
            try:
                async with asyncio.timeout_at(give_up):
                    await self.budget.reserve(reserved)
            except TimeoutError:
                return self._timed_out(client)
        try:
            try:
                async with asyncio.timeout_at(give_up):
                    body = await self._read_body(request.receive)
            except TimeoutError:
                return self._timed_out(client)
            except _BodyTooLargeError:
                return self._too_large(client)
            except _ClientGoneError:
                # A body cut short is not the delivery its sender meant: storing it
                # could apply half a change (a chunked body cut after a whole chunk
                # parsed as valid JSON). Nobody is left to read this answer.
                self._log.warning(
                    "the connection from %s closed before its whole body arrived; "
                    "nothing was stored",
                    client,
                )
                return _problem_answer(
                    400, "the connection closed before the whole body arrived; it was not stored"
                )
            content_type = headers.get(b"content-type")
            user_agent = headers.get(b"user-agent")
            delivery = Delivery(
                body,
                None if content_type is None else content_type.decode("latin-1"),
                client,
                None if user_agent is None else user_agent.decode("latin-1"),
            )
            assert self.store is not None, "the lifespan sets the store before serving"
            try:
                receipt = await self.store.store(delivery)
            except StoreError as exc:
                return _problem_answer(exc.status, exc.detail)
        finally:
            self.budget.release(reserved)
        if self.observe is not None:
            self.observe(len(body), receipt)
        return JSONAnswer(202, receipt.to_json())

    def _timed_out(self, client: str | None) -> Response:
        self._log.warning("gave up on a body not sent within %s s by %s", self.body_timeout, client)
        return _problem_answer(
            408, f"body not received within {self.body_timeout} s; it was not stored", CLOSE
        )

    def _too_large(self, client: str | None) -> Response:
        self._log.warning("refused a body over %d bytes from %s", self.max_body_bytes, client)
        return _problem_answer(
            413, f"body is larger than {self.max_body_bytes} bytes; it was not stored", CLOSE
        )

    async def _read_body(self, receive: Callable[[], Any]) -> bytes:
        """The raw body, refused as soon as it is known to exceed the limit or to be cut short."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body_bytes:
                raise _BodyTooLargeError
            return body
        chunks = bytearray(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunks += message.get("body", b"")
            if len(chunks) > self.max_body_bytes:
                raise _BodyTooLargeError
        return bytes(chunks)


# Read from the path as it is, not validated: a str cannot fail (no 422 to document).
TOKEN_PARAMETER = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "NOTIFY_TOKEN: when it is set, the only path that stores anything",
}


class LeanRoute(APIRoute):
    """A FastAPI route, documented like any other, whose requests skip FastAPI's handling.

    Its endpoint takes the Request alone and returns a Response, so there is
    nothing to solve, validate or serialise: ``handle`` calls it directly
    instead of through FastAPI's per-request machinery (dependency solving,
    exit stacks, telemetry), which cost the framework's limit about a
    quarter of its requests/s (bench/README.md, step 16).
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request with the endpoint's response (405 for another method)."""
        if scope["method"] not in self.methods:
            await super().handle(scope, receive, send)
            return
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def install(app: FastAPI, deliveries: Deliveries) -> None:
    """Add the two documented routes, and the same with a trailing slash, to the app.

    A listener registered with a slash must not get a redirect: the CMS does
    not follow it, so every change would be lost. The routes go on the app's
    own router (an included router costs a second match per request).
    """
    documented: dict[str, Any] = {
        "status_code": 202,
        "response_model": ReceiptAnswer,
        "responses": ANSWERS,
        "tags": ["deliveries"],
        "route_class_override": LeanRoute,
    }

    async def deliver(request: Request) -> Response:
        """Store one CMS change and answer its receipt (without NOTIFY_TOKEN)."""
        return await deliveries.deliver(request, None)

    async def deliver_with_token(request: Request) -> Response:
        """Store one CMS change and answer its receipt; the path carries NOTIFY_TOKEN."""
        return await deliveries.deliver(request, request.path_params["token"])

    app.router.add_api_route(
        "/notifications",
        deliver,
        methods=["POST"],
        summary="Deliver a change",
        operation_id="deliver",
        openapi_extra=BODY,
        **documented,
    )
    app.router.add_api_route(
        "/notifications/{token}",
        deliver_with_token,
        methods=["POST"],
        summary="Deliver a change (with NOTIFY_TOKEN)",
        operation_id="deliver_with_token",
        openapi_extra={**BODY, "parameters": [TOKEN_PARAMETER]},
        **documented,
    )
    for path, endpoint in (
        ("/notifications/", deliver),
        ("/notifications/{token}/", deliver_with_token),
    ):
        app.router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            include_in_schema=False,
            route_class_override=LeanRoute,
        )
