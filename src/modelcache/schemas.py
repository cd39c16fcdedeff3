"""Typed requests: the original ModelCache JSON, validated into pydantic models.

`parse_request()` turns a decoded body into one of the four request models or raises
InvalidRequest with the code of the first problem found: 101 not an object, 102 unknown
`type`, 103 missing or malformed `scope`, 104 invalid tenant name, then the operation's own
code (201 query, 301 insert, 401 remove, 501 register) for its fields.
"""

from __future__ import annotations

import numbers
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from modelcache.errors import OPERATION_CODES, InvalidRequest
from modelcache.messages import Message
from modelcache.tenants import MAX_TENANT_LENGTH, TENANT_PATTERN, validate_tenant

__all__ = [
    "ChatInfo",
    "ChatMessage",
    "InsertRequest",
    "QueryRequest",
    "RegisterRequest",
    "RemoveRequest",
    "Request",
    "parse_conversation",
    "parse_ids",
    "parse_request",
    "to_messages",
]

MAX_INSERT_ITEMS = 1000
MAX_ID = 2**63 - 1

# What the validators below check, said in the OpenAPI document too (schema only: the
# validators stay the authority and give the error codes). Not expressible there: the last
# message must be the user's, and the user's question must not be blank.
_NO_NUL = {"pattern": "^[^\\u0000]*$"}
_TENANT = {"pattern": TENANT_PATTERN.pattern, "minLength": 1, "maxLength": MAX_TENANT_LENGTH}


def _conversation_schema(schema: dict[str, Any]) -> None:
    """The messages (at least one), or a bare string: one user message."""
    array = {key: schema.pop(key) for key in ("type", "items")}
    question = {"type": "string", "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}  # not blank, no NUL
    schema["anyOf"] = [question, {**array, "minItems": 1}]
    schema["description"] = "the conversation, the user's question last; a bare string is one user message"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _no_nul(text: str) -> str:
    """NUL cannot be stored by every backend (PostgreSQL text), so no backend gets one."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return text


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: Annotated[StrictStr, Field(json_schema_extra=_NO_NUL)]

    _content = field_validator("content")(_no_nul)


def _integral(value: Any) -> Any:
    """5.0 is the integer 5 (as in JSON Schema), and so is a numpy integer (library callers);
    5.5, "5" and true stay invalid."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


#: Entry ids are 64-bit in every backend; a larger one cannot exist, so it is a bad request.
EntryId = Annotated[StrictInt, Field(ge=0, le=MAX_ID), BeforeValidator(_integral)]
_IDS: TypeAdapter[list[int]] = TypeAdapter(list[EntryId])


def _as_conversation(value: Any) -> Any:
    """A bare string is a one-message conversation."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


def _check_conversation(messages: list[ChatMessage]) -> list[ChatMessage]:
    if not messages:
        raise ValueError("must contain at least one message")
    if messages[-1].role != "user":
        raise ValueError("the last message must be the user's question (role 'user')")
    if not messages[-1].content.strip():
        raise ValueError("the user's question must not be empty")
    return messages


class Scope(_Model):
    model: Annotated[StrictStr, Field(json_schema_extra=_TENANT)]


class QueryRequest(_Model):
    type: Literal["query"]
    scope: Scope
    query: Annotated[list[ChatMessage], Field(json_schema_extra=_conversation_schema)]
    #: Optional per-call minimum cosine similarity, overriding the tenant's thresholds.
    threshold: Annotated[StrictFloat, Field(ge=-1, le=1)] | None = None

    _conversation = field_validator("query", mode="before")(_as_conversation)
    _check = field_validator("query")(_check_conversation)


class ChatInfo(_Model):
    query: Annotated[list[ChatMessage], Field(json_schema_extra=_conversation_schema)]
    answer: Annotated[StrictStr, Field(json_schema_extra=_NO_NUL)]

    _answer = field_validator("answer")(_no_nul)

    _conversation = field_validator("query", mode="before")(_as_conversation)
    _check = field_validator("query")(_check_conversation)


class InsertRequest(_Model):
    type: Literal["insert"]
    scope: Scope
    chat_info: Annotated[list[ChatInfo], Field(min_length=1, max_length=MAX_INSERT_ITEMS)]


class RemoveRequest(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"remove_type": {"const": "delete_by_id"}}},
            "then": {"required": ["id_list"], "properties": {"id_list": {"minItems": 1}}},
        }
    )

    type: Literal["remove"]
    scope: Scope
    remove_type: Literal["delete_by_id", "truncate_by_model"]
    id_list: list[EntryId] = []


class RegisterRequest(_Model):
    type: Literal["register"]
    scope: Scope
    #: Optional per-tenant thresholds, stored with the tenant.
    threshold_short: Annotated[StrictFloat, Field(ge=-1, le=1)] | None = None
    threshold_long: Annotated[StrictFloat, Field(ge=-1, le=1)] | None = None


Request = QueryRequest | InsertRequest | RemoveRequest | RegisterRequest

_MODELS: dict[str, type[_Model]] = {
    "query": QueryRequest,
    "insert": InsertRequest,
    "remove": RemoveRequest,
    "register": RegisterRequest,
}


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_request(body: Any) -> Request:
    """Validate a decoded JSON body (see module docstring for the error codes)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code=101, http_status=400)
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in _MODELS:
        raise InvalidRequest(
            f"type must be one of {sorted(_MODELS)}, got {kind!r}", code=102, http_status=400
        )
    scope = body.get("scope")
    if not isinstance(scope, dict) or "model" not in scope:
        raise InvalidRequest("scope must be an object with a 'model' field", code=103)
    validate_tenant(scope["model"])
    try:
        request: Request = _MODELS[kind].model_validate(body)  # type: ignore[assignment]
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc), code=OPERATION_CODES[kind][0]) from None
    if isinstance(request, RemoveRequest) and request.remove_type == "delete_by_id" and not request.id_list:
        raise InvalidRequest("id_list must list at least one id for delete_by_id", code=401)
    return request


def parse_conversation(value: Any, *, code: int = 201) -> list[Message]:
    """Validate messages given to the library API, as the HTTP API does."""
    try:
        chat = ChatInfo.model_validate({"query": value, "answer": ""})
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc), code=code) from None
    return to_messages(chat.query)


def parse_ids(value: Any) -> list[int]:
    """Validate entry ids given to the library API, as the HTTP API does."""
    try:
        return _IDS.validate_python(value)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc), code=401) from None


def to_messages(messages: list[ChatMessage]) -> list[Message]:
    return [Message(m.role, m.content) for m in messages]
