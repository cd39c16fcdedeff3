"""The request body schema for the OpenAPI document.

`POST /modelcache` reads its body by hand (it also accepts a JSON string holding the
object), so FastAPI cannot derive the schema; this adds it from the pydantic models.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from modelcache.schemas import Request

__all__ = ["install_request_schema", "request_body"]

_REF = "#/components/schemas/{model}"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(Request).json_schema(ref_template=_REF)
    return schema


def request_body() -> dict[str, Any]:
    schema = _schema()
    schema.pop("$defs", None)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


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
