"""The original ModelCache client code, run against the real server process."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from jsonschema import Draft202012Validator

from tests.e2e.conftest import ServerProcess

SYSTEM = {
    "role": "system",
    "content": "你是一个AI代码助手, 你必须提供中立的、无害的答案帮助用户解决代码相关的问题",
}
ANSWER = "你好,我是智能助手,请问有什么能帮您!"


def tenant() -> str:
    return f"CODEGPT-{uuid.uuid4().hex[:8]}"


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def query(server: ServerProcess, model: str, text: str, as_string: bool = True) -> dict[str, object]:
    res = server.post({"type": "query", "scope": {"model": model}, "query": ask(text)}, as_string=as_string)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/json")
    body: dict[str, object] = res.json()
    return body


@pytest.mark.parametrize("as_string", [True, False], ids=["json-string-body", "json-object-body"])
def test_readme_flow(server: ServerProcess, as_string: bool):
    model = tenant()
    scope = {"model": model}
    res = server.post({"type": "register", "scope": scope}, as_string=as_string)
    assert res.json() == {
        "errorCode": 0,
        "errorDesc": "",
        "writeStatus": "success",
        "response": "create_success",
    }
    assert (
        server.post({"type": "register", "scope": scope}, as_string=as_string).json()["response"]
        == "already_exists"
    )

    chat_info = [{"query": ask("你是谁?"), "answer": ANSWER}]
    res = server.post({"type": "insert", "scope": scope, "chat_info": chat_info}, as_string=as_string)
    body = res.json()
    assert res.status_code == 200 and body["errorCode"] == 0 and body["writeStatus"] == "success"
    [entry_id] = body["ids"]

    hit = query(server, model, "你是谁?", as_string)
    assert hit["cacheHit"] is True and hit["answer"] == ANSWER and hit["hit_query"] == "你是谁?"
    assert hit["id"] == entry_id and hit["errorCode"] == 0 and str(hit["delta_time"]).endswith("s")
    paraphrase = query(server, model, "你是什么人?", as_string)
    assert paraphrase["cacheHit"] is True and paraphrase["answer"] == ANSWER
    assert 0.8 <= float(paraphrase["score"]) < 1.0  # type: ignore[arg-type]
    miss = query(server, model, "今天天气怎么样?", as_string)
    assert miss["cacheHit"] is False and miss["answer"] == "" and miss["hit_query"] == ""
    assert query(server, tenant(), "你是谁?", as_string)["cacheHit"] is False

    res = server.post(
        {"type": "remove", "scope": scope, "remove_type": "truncate_by_model"}, as_string=as_string
    )
    assert res.json()["writeStatus"] == "success" and res.json()["response"]["removed"] == 1
    assert query(server, model, "你是谁?", as_string)["cacheHit"] is False


def test_insert_every_item_and_delete_by_id(server: ServerProcess):
    model = tenant()
    chat_info = [
        {"query": ask("如何用Python读取文件?"), "answer": "with open(path) as f: ..."},
        {"query": ask("What is a closure in JavaScript?"), "answer": "A function with its scope."},
    ]
    ids = server.post({"type": "insert", "scope": {"model": model}, "chat_info": chat_info}).json()["ids"]
    assert len(ids) == 2
    res = server.post(
        {"type": "remove", "scope": {"model": model}, "remove_type": "delete_by_id", "id_list": [ids[0]]}
    )
    assert res.json()["response"] == {"status": "success", "removed": 1, "ids": [ids[0]]}
    assert query(server, model, "如何用Python读取文件?")["cacheHit"] is False
    assert query(server, model, "What is a closure in JavaScript?")["cacheHit"] is True


def test_welcome_health_and_openapi(server: ServerProcess):
    assert requests.get(f"{server.url}/welcome", timeout=5).text == "hello, modelcache!"
    health = requests.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = requests.get(f"{server.url}/openapi.json", timeout=5).json()
    body = spec["paths"]["/modelcache"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(body["anyOf"]) == 4 and "QueryRequest" in spec["components"]["schemas"]


# -- bad input: each gets its own error, changes nothing, and the server keeps serving ------


@pytest.fixture(scope="module")
def stored(server: ServerProcess) -> str:
    model = tenant()
    server.post(
        {
            "type": "insert",
            "scope": {"model": model},
            "chat_info": [{"query": ask("你是谁?"), "answer": ANSWER}],
        }
    )
    return model


def post_raw(server: ServerProcess, data: bytes, content_type: str = "application/json") -> requests.Response:
    return requests.post(
        f"{server.url}/modelcache", data=data, headers={"Content-Type": content_type}, timeout=30
    )


def insert_body(model: str, chat_info: object) -> dict[str, object]:
    return {"type": "insert", "scope": {"model": model}, "chat_info": chat_info}


BAD_INPUTS = {
    "body-not-json": (lambda m: b"{not json", 400, 101),
    "json-string-not-json": (lambda m: json.dumps("hello"), 400, 101),
    "json-string-not-object": (lambda m: json.dumps(json.dumps([1, 2])), 400, 101),
    "json-array": (lambda m: [1, 2, 3], 400, 101),
    "missing-type": (lambda m: {"scope": {"model": m}, "query": ask("你是谁?")}, 400, 102),
    "unknown-type": (lambda m: {"type": "drop", "scope": {"model": m}}, 400, 102),
    "type-an-object": (lambda m: {"type": {}, "scope": {"model": m}}, 400, 102),
    "type-a-list": (lambda m: {"type": ["query"], "scope": {"model": m}, "query": ask("你是谁?")}, 400, 102),
    "threshold-a-boolean": (
        lambda m: {"type": "query", "scope": {"model": m}, "query": ask("你是谁?"), "threshold": True},
        422,
        201,
    ),
    "threshold-a-string": (
        lambda m: {"type": "query", "scope": {"model": m}, "query": ask("你是谁?"), "threshold": "0.5"},
        422,
        201,
    ),
    "register-threshold-a-boolean": (
        lambda m: {"type": "register", "scope": {"model": m}, "threshold_long": False},
        422,
        501,
    ),
    "missing-scope": (lambda m: {"type": "query", "query": ask("你是谁?")}, 422, 103),
    "missing-model": (lambda m: {"type": "query", "scope": {}, "query": ask("你是谁?")}, 422, 103),
    "invalid-model-name": (
        lambda m: {"type": "query", "scope": {"model": "x y"}, "query": ask("你是谁?")},
        422,
        104,
    ),
    "query-wrong-type": (lambda m: {"type": "query", "scope": {"model": m}, "query": 42}, 422, 201),
    "empty-messages": (lambda m: {"type": "query", "scope": {"model": m}, "query": []}, 422, 201),
    "unknown-role": (
        lambda m: {
            "type": "query",
            "scope": {"model": m},
            "query": [{"role": "robot", "content": "你是谁?"}],
        },
        422,
        201,
    ),
    "insert-answer-wrong-type": (lambda m: insert_body(m, [{"query": ask("新问题"), "answer": 1}]), 422, 301),
    "insert-empty-messages": (lambda m: insert_body(m, [{"query": [], "answer": "x"}]), 422, 301),
    "insert-unknown-role": (
        lambda m: insert_body(
            m,
            [
                {"query": ask("新问题"), "answer": "a"},
                {"query": [{"role": "bot", "content": "b"}], "answer": "b"},
            ],
        ),
        422,
        301,
    ),
    "non-integer-ids": (
        lambda m: {
            "type": "remove",
            "scope": {"model": m},
            "remove_type": "delete_by_id",
            "id_list": ["1", 2.5],
        },
        422,
        401,
    ),
    "id-beyond-64-bits": (
        lambda m: {
            "type": "remove",
            "scope": {"model": m},
            "remove_type": "delete_by_id",
            "id_list": [2**63],
        },
        422,
        401,
    ),
    "negative-id": (
        lambda m: {"type": "remove", "scope": {"model": m}, "remove_type": "delete_by_id", "id_list": [-1]},
        422,
        401,
    ),
    "unknown-remove-type": (
        lambda m: {"type": "remove", "scope": {"model": m}, "remove_type": "everything"},
        422,
        401,
    ),
}


def send_bad(server: ServerProcess, body: object) -> requests.Response:
    """bytes and str are sent as the raw body; anything else as JSON."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes):
        return post_raw(server, body)
    return requests.post(f"{server.url}/modelcache", json=body, timeout=30)


def assert_still_serving(server: ServerProcess, model: str) -> None:
    hit = query(server, model, "你是谁?")
    assert hit["cacheHit"] is True and hit["answer"] == ANSWER
    assert query(server, model, "新问题")["cacheHit"] is False


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(server: ServerProcess, spec: dict[str, object], stored: str, case: str):
    make, status, code = BAD_INPUTS[case]
    res = send_bad(server, make(stored))
    assert res.status_code == status, res.text
    assert_documented(spec, "/modelcache", "post", res)
    body = res.json()
    assert body["errorCode"] == code and body["errorDesc"]
    assert "Traceback" not in res.text
    assert_still_serving(server, stored)


def test_oversized_body(server: ServerProcess, spec: dict[str, object], stored: str):
    big = insert_body(stored, [{"query": ask("新问题"), "answer": "x" * 100_000}])
    res = requests.post(f"{server.url}/modelcache", json=big, timeout=30)
    assert res.status_code == 413 and res.json()["errorCode"] == 105
    assert_documented(spec, "/modelcache", "post", res)
    assert_still_serving(server, stored)


def test_unknown_path_and_method(server: ServerProcess):
    res = requests.post(f"{server.url}/nope", json={}, timeout=5)
    assert res.status_code == 404 and res.json()["errorCode"] == 106
    res = requests.get(f"{server.url}/modelcache", timeout=5)
    assert res.status_code == 405 and res.json()["errorCode"] == 106
    assert res.headers["Allow"] == "POST"  # RFC 9110: a 405 lists the methods that work


# -- the OpenAPI document describes what the server really accepts and answers ------------


@pytest.fixture(scope="module")
def spec(server: ServerProcess) -> dict[str, object]:
    document: dict[str, object] = requests.get(f"{server.url}/openapi.json", timeout=5).json()
    return document


def schema_errors(spec: dict[str, object], schema: dict[str, object], value: object) -> list[str]:
    """Why `value` is outside `schema` (a part of the document, its $refs resolved in it)."""
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    return [error.message for error in validator.iter_errors(value)]


def request_schema(spec: dict[str, object]) -> dict[str, object]:
    body = spec["paths"]["/modelcache"]["post"]["requestBody"]  # type: ignore[index]
    schema: dict[str, object] = body["content"]["application/json"]["schema"]
    return schema


def assert_documented(spec: dict[str, object], path: str, method: str, res: requests.Response) -> None:
    documented = spec["paths"][path][method]["responses"]  # type: ignore[index]
    assert str(res.status_code) in documented, f"{res.status_code} is not documented for {method} {path}"
    schema = documented[str(res.status_code)]["content"]["application/json"]["schema"]
    assert schema_errors(spec, schema, res.json()) == [], res.text


def good_requests(model: str) -> list[dict[str, object]]:
    scope = {"model": model}
    return [
        {"type": "register", "scope": scope},
        {"type": "register", "scope": scope, "threshold_short": 0.9, "threshold_long": 1},
        {"type": "insert", "scope": scope, "chat_info": [{"query": ask("你是谁?"), "answer": ANSWER}]},
        {"type": "insert", "scope": scope, "chat_info": [{"query": "What is a closure?", "answer": "A"}]},
        {"type": "query", "scope": scope, "query": ask("你是谁?")},
        {"type": "query", "scope": scope, "query": "今天天气怎么样?", "threshold": 0.95},
        {"type": "remove", "scope": scope, "remove_type": "delete_by_id", "id_list": [0, 2**63 - 1, 7.0]},
        {"type": "remove", "scope": scope, "remove_type": "truncate_by_model"},
    ]


def test_good_requests_fit_the_document_and_so_do_the_replies(server: ServerProcess, spec: dict[str, object]):
    for body in good_requests(tenant()):
        assert schema_errors(spec, request_schema(spec), body) == [], body
        res = server.post(body, as_string=False)
        assert res.status_code == 200, res.text
        assert_documented(spec, "/modelcache", "post", res)
    assert_documented(spec, "/health", "get", requests.get(f"{server.url}/health", timeout=5))


JSON_BAD_INPUTS = [
    case for case, (make, _, _) in BAD_INPUTS.items() if not isinstance(make("m"), bytes | str)
]


@pytest.mark.parametrize("case", JSON_BAD_INPUTS)
def test_bad_inputs_are_outside_the_document(spec: dict[str, object], case: str):
    """(Their replies are checked against the document in test_bad_input.)"""
    body = BAD_INPUTS[case][0]("CODEGPT-any")
    assert schema_errors(spec, request_schema(spec), body), f"the document admits {body}"
