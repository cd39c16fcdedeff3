"""The OpenAPI document: request body and response schemas of `POST /modelcache`.

`POST /modelcache` reads its body by hand (it also accepts a JSON string holding the
object) and builds its replies as dicts, so FastAPI cannot derive either schema: the
request's comes from the request models, the replies' from the models below, which only
describe them (tests check the server's real replies against this document).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, TypeAdapter

from modelcache.schemas import Request

__all__ = ["HEALTH_RESPONSES", "MODELCACHE_RESPONSES", "install_request_schema", "request_body"]


class _Reply(BaseModel):
    errorCode: Literal[0]  # noqa: N815 - the original API's field names
    errorDesc: Literal[""]  # noqa: N815


class QueryReply(_Reply):
    cacheHit: bool  # noqa: N815
    delta_time: str = Field(description="server time spent, e.g. '0.0042s'")
    hit_query: str = Field(description="the stored question that was served; '' on a miss")
    answer: str = Field(description="the stored answer; '' on a miss")
    score: float | None = Field(description="the similarity of the served entry; null on a miss")
    id: int | None = Field(description="the served entry's id; null on a miss")


class InsertReply(_Reply):
    writeStatus: Literal["success"]  # noqa: N815
    ids: list[int] = Field(description="the new entries' ids, in the order of chat_info")


class Removed(BaseModel):
    status: Literal["success"]
    removed: int
    ids: list[int] | None = Field(None, description="delete_by_id: the ids that were there and are gone")


class RemoveReply(_Reply):
    writeStatus: Literal["success"]  # noqa: N815
    response: Removed


class RegisterReply(_Reply):
    writeStatus: Literal["success"]  # noqa: N815
    response: Literal["create_success", "already_exists"]


class ErrorReply(BaseModel):
    """Every failure: a code (1xx parsing, 2xx query, 3xx insert, 4xx remove, 5xx register)
    and a message; a query's or a write's usual fields come empty beside them."""

    errorCode: int = Field(ge=1)  # noqa: N815
    errorDesc: str = Field(min_length=1)  # noqa: N815
    cacheHit: Literal[False] | None = None  # noqa: N815
    delta_time: str | None = None
    hit_query: Literal[""] | None = None
    answer: Literal[""] | None = None
    writeStatus: Literal["exception"] | None = None  # noqa: N815


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    row_store: str = Field(description="'ok' or the error")
    vector_index: str = Field(description="'ok' or the error")


#: The replies of `POST /modelcache`, by HTTP status.
MODELCACHE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": QueryReply | InsertReply | RemoveReply | RegisterReply, "description": "done"},
    400: {"model": ErrorReply, "description": "not JSON, not an object, or an unknown type (101, 102)"},
    413: {"model": ErrorReply, "description": "the body is larger than max_body_bytes (105)"},
    422: {"model": ErrorReply, "description": "a field is missing or invalid; nothing was changed"},
    500: {"model": ErrorReply, "description": "an internal error (x02); the server log has the cause"},
    503: {"model": ErrorReply, "description": "a storage backend is unreachable (x03); retry later"},
}


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "every backend answers"},
    503: {"model": Health, "description": "some backend does not answer"},
}

_REF = "#/components/schemas/{model}"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(Request).json_schema(ref_template=_REF)
    return schema


def request_body() -> dict[str, Any]:
    schema = _schema()
    schema.pop("$defs", None)
    return {
        "required": True,
        "description": "one request object; the original clients' form, a JSON string that holds "
        "the object, is accepted too",
        "content": {"application/json": {"schema": schema}},
    }


def install_request_schema(app: FastAPI) -> None:
    """Make `app.openapi()` include the request models as components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(_schema().get("$defs", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
