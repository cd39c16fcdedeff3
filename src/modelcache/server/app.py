"""The HTTP edge: the original ModelCache API on FastAPI.

`POST /modelcache` takes the original JSON, either as an object or, as the original clients
send it (`requests.post(url, json=json.dumps(data))`), as a JSON string holding the object.
Errors become JSON here and only here: `errorCode`, `errorDesc` and a real HTTP status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelcache.cache import Cache
from modelcache.errors import OPERATION_CODES, BackendUnavailable, InvalidRequest, ModelCacheError
from modelcache.schemas import (
    InsertRequest,
    QueryRequest,
    RemoveRequest,
    parse_request,
    to_messages,
)
from modelcache.schemas import (
    Request as CacheRequest,
)
from modelcache.server.openapi import (
    HEALTH_RESPONSES,
    MODELCACHE_RESPONSES,
    install_request_schema,
    request_body,
)
from modelcache.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_EMPTY_FIELDS: dict[str, dict[str, Any]] = {
    "query": {"cacheHit": False, "delta_time": "0s", "hit_query": "", "answer": ""},
    "insert": {"writeStatus": "exception"},
    "remove": {"writeStatus": "exception"},
    "register": {"writeStatus": "exception"},
}


def _error(
    status: int, code: int, message: str, kind: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"errorCode": code, "errorDesc": message}
    body.update(_EMPTY_FIELDS.get(kind or "", {}))
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidRequest(f"request body is larger than {limit} bytes", code=105, http_status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"request body is larger than {limit} bytes", code=105, http_status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> Any:
    """JSON object, or a JSON string that holds one (the original clients' form)."""
    try:
        body = json.loads(raw)
        if isinstance(body, str):
            body = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code=101, http_status=400
        ) from None
    return body


def _seconds(value: float) -> str:
    return f"{round(value, 4)}s"


def _run(cache: Cache, request: CacheRequest) -> dict[str, Any]:
    """Carry out a validated request on the cache; returns the response body."""
    tenant = request.scope.model
    ok: dict[str, Any] = {"errorCode": 0, "errorDesc": ""}
    if isinstance(request, QueryRequest):
        result = cache.query(tenant, to_messages(request.query), threshold=request.threshold)
        return ok | {
            "cacheHit": result.hit,
            "delta_time": _seconds(result.seconds),
            "hit_query": result.question,
            "answer": result.answer,
            "score": result.score,
            "id": result.id,
        }
    if isinstance(request, InsertRequest):
        ids = cache.insert(tenant, [(to_messages(item.query), item.answer) for item in request.chat_info])
        return ok | {"writeStatus": "success", "ids": ids}
    if isinstance(request, RemoveRequest):
        if request.remove_type == "truncate_by_model":
            removed = cache.truncate(tenant)
            response: dict[str, Any] = {"status": "success", "removed": removed}
        else:
            deleted = cache.remove(tenant, request.id_list)
            response = {"status": "success", "removed": len(deleted), "ids": deleted}
        return ok | {"writeStatus": "success", "response": response}
    created = cache.register(
        tenant, threshold_short=request.threshold_short, threshold_long=request.threshold_long
    )
    return ok | {"writeStatus": "success", "response": "create_success" if created else "already_exists"}


def create_app(settings: Settings | None = None, *, cache: Cache | None = None) -> FastAPI:
    """The ASGI app. The cache is built from settings unless given, and started in the lifespan."""
    settings = settings or (cache.settings if cache else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.cache = cache or Cache(settings)
        await run_in_threadpool(app.state.cache.start)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.cache.close)

    app = FastAPI(title="ModelCache", summary="A semantic cache for LLM answers", lifespan=lifespan)

    @app.get("/welcome", response_class=PlainTextResponse)
    async def welcome() -> str:
        return "hello, modelcache!"

    @app.get("/health", responses=HEALTH_RESPONSES)
    async def health(request: Request) -> JSONResponse:
        report = await run_in_threadpool(request.app.state.cache.health)
        healthy = all(value == "ok" for value in report.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", **report}, status_code=200 if healthy else 503
        )

    @app.post("/modelcache", openapi_extra={"requestBody": request_body()}, responses=MODELCACHE_RESPONSES)
    async def modelcache(request: Request) -> JSONResponse:
        kind: str | None = None
        try:
            body = _decode(await _read_body(request, settings.max_body_bytes))
            kind = body.get("type") if isinstance(body, dict) else None
            kind = kind if isinstance(kind, str) else None  # e.g. {"type": [1]}: no operation
            parsed = parse_request(body)
            return JSONResponse(await run_in_threadpool(_run, request.app.state.cache, parsed))
        except ModelCacheError as exc:
            return _failure(exc, kind)
        except Exception:
            log.exception("unexpected error serving a %s request", kind)
            _, internal, _ = OPERATION_CODES.get(kind or "", (0, 500, 0))
            return _error(500, internal, "internal error; see the server log", kind)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # a 405 keeps its Allow header (RFC 9110)
        return _error(exc.status_code, 106, str(exc.detail), headers=exc.headers)

    install_request_schema(app)
    return app


def _failure(exc: ModelCacheError, kind: str | None) -> JSONResponse:
    """Map an error to its response; backend and internal errors get the operation's code."""
    codes = OPERATION_CODES.get(kind or "")
    if isinstance(exc, BackendUnavailable):
        log.warning("%s request failed: %s", kind, exc.message)
        return _error(503, codes[2] if codes else exc.code, exc.message, kind)
    if isinstance(exc, InvalidRequest):
        return _error(exc.http_status, exc.code, exc.message, kind)
    log.error("%s request failed: %s", kind, exc.message)
    return _error(500, codes[1] if codes else exc.code, exc.message, kind)
