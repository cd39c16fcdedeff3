import pytest

from modelcache.errors import InvalidRequest
from modelcache.schemas import InsertRequest, QueryRequest, RemoveRequest, parse_conversation, parse_request

SCOPE = {"model": "CODEGPT-1008"}
QUERY = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "你是谁?"}]


def code_of(body: object) -> int:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    return info.value.code


def test_valid_requests_parse():
    assert isinstance(parse_request({"type": "query", "scope": SCOPE, "query": QUERY}), QueryRequest)
    insert = parse_request(
        {"type": "insert", "scope": SCOPE, "chat_info": [{"query": QUERY, "answer": "hi"}]}
    )
    assert isinstance(insert, InsertRequest)
    remove = parse_request(
        {"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": [1, 2]}
    )
    assert isinstance(remove, RemoveRequest) and remove.id_list == [1, 2]


def test_unknown_fields_are_ignored_for_compatibility():
    parsed = parse_request({"type": "query", "scope": SCOPE, "query": QUERY, "extra": 1})
    assert isinstance(parsed, QueryRequest)


def test_a_bare_string_query_is_one_user_message():
    parsed = parse_request({"type": "query", "scope": SCOPE, "query": "hello"})
    assert isinstance(parsed, QueryRequest)
    assert [(m.role, m.content) for m in parsed.query] == [("user", "hello")]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("just a string", 101),
        ([1, 2], 101),
        ({"scope": SCOPE, "query": QUERY}, 102),
        ({"type": "select", "scope": SCOPE}, 102),
        ({"type": "query", "query": QUERY}, 103),
        ({"type": "query", "scope": "CODEGPT", "query": QUERY}, 103),
        ({"type": "query", "scope": {}, "query": QUERY}, 103),
        ({"type": "query", "scope": {"model": "bad name!"}, "query": QUERY}, 104),
        ({"type": "query", "scope": {"model": 12}, "query": QUERY}, 104),
        ({"type": "query", "scope": SCOPE, "query": []}, 201),
        ({"type": "query", "scope": SCOPE}, 201),
        ({"type": "query", "scope": SCOPE, "query": [{"role": "wizard", "content": "x"}]}, 201),
        ({"type": "query", "scope": SCOPE, "query": [{"role": "user", "content": 5}]}, 201),
        ({"type": "query", "scope": SCOPE, "query": [{"role": "user", "content": "  "}]}, 201),
        (
            {
                "type": "query",
                "scope": SCOPE,
                "query": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            },
            201,
        ),
        ({"type": "query", "scope": SCOPE, "query": QUERY, "threshold": 3}, 201),
        ({"type": "insert", "scope": SCOPE, "chat_info": []}, 301),
        ({"type": "insert", "scope": SCOPE, "chat_info": [{"query": QUERY}]}, 301),
        ({"type": "insert", "scope": SCOPE, "chat_info": [{"query": QUERY, "answer": 42}]}, 301),
        ({"type": "insert", "scope": SCOPE, "chat_info": "nope"}, 301),
        ({"type": "insert", "scope": SCOPE, "chat_info": [{"query": QUERY, "answer": "a\x00b"}]}, 301),
        ({"type": "query", "scope": SCOPE, "query": [{"role": "user", "content": "a\x00b"}]}, 201),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_all"}, 401),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": ["1"]}, 401),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": [1.5]}, 401),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": [True]}, 401),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": []}, 401),
        ({"type": "remove", "scope": SCOPE, "remove_type": "delete_by_id", "id_list": [-1]}, 401),
        ({"type": "register", "scope": SCOPE, "threshold_short": "high"}, 501),
    ],
)
def test_each_bad_input_has_its_code(body: object, code: int):
    assert code_of(body) == code


def test_errors_name_the_field():
    with pytest.raises(InvalidRequest) as info:
        parse_request({"type": "query", "scope": SCOPE, "query": [{"role": "wizard", "content": "x"}]})
    assert "query.0.role" in info.value.message


def test_library_conversations_are_validated_the_same_way():
    assert [m.role for m in parse_conversation(QUERY)] == ["system", "user"]
    with pytest.raises(InvalidRequest) as info:
        parse_conversation([{"role": "user"}], code=301)
    assert info.value.code == 301
