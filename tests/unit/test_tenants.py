import pytest

from modelcache.errors import InvalidRequest
from modelcache.tenants import backend_name, validate_tenant


@pytest.mark.parametrize("name", ["CODEGPT-1008", "gpt", "a", "team.prod:v2", "x" * 64])
def test_valid_names(name: str):
    assert validate_tenant(name) == name


@pytest.mark.parametrize("name", ["", "-lead", "a b", "x" * 65, "名字", "a/b", "a;drop", 7, None])
def test_invalid_names_are_rejected_with_code_104(name: object):
    with pytest.raises(InvalidRequest) as info:
        validate_tenant(name)
    assert info.value.code == 104


def test_backend_names_are_safe_and_distinct():
    names = {backend_name(t) for t in ["a-b", "a_b", "a.b", "a:b", "A-B"]}
    assert len(names) == 5
    for name in names:
        assert name.replace("_", "").isalnum()
        assert name.startswith("mc_")


def test_backend_name_is_stable():
    assert backend_name("gpt") == backend_name("gpt")
    assert not backend_name("gpt1").startswith(backend_name("gpt") + "_")


def test_backend_names_fit_postgres_identifiers_and_keep_long_tenants_apart():
    a, b = "a" * 63 + "b", "a" * 63 + "c"
    assert len(backend_name(a)) <= 63 and len(backend_name(b)) <= 63
    assert backend_name(a) != backend_name(b)
