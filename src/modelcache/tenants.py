"""Tenant names: the one validation rule and the one mapping to backend names."""

from __future__ import annotations

import hashlib
import re

from modelcache.errors import InvalidRequest

__all__ = ["MAX_BACKEND_NAME", "MAX_TENANT_LENGTH", "TENANT_PATTERN", "backend_name", "validate_tenant"]

MAX_TENANT_LENGTH = 64
MAX_BACKEND_NAME = 63
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


def validate_tenant(name: object) -> str:
    """Return `name` if it is a valid tenant name, else raise InvalidRequest (code 104)."""
    if not isinstance(name, str):
        raise InvalidRequest("scope.model must be a string", code=104)
    if not TENANT_PATTERN.fullmatch(name):
        raise InvalidRequest(
            "scope.model must be 1-64 characters of letters, digits, '_', '-', '.', ':'"
            " and start with a letter or digit",
            code=104,
        )
    return name


def backend_name(tenant: str) -> str:
    """Map a valid tenant name to a name every backend accepts.

    The result is `mc_<tenant with non-alphanumerics as '_'>_<8 hex of sha1>`, at most 63
    characters (PostgreSQL's identifier limit; the readable middle is shortened, never the
    hash): safe as a Milvus collection, a Redis key prefix, a SQL identifier and a file name,
    and distinct for distinct tenants (`a-b` and `a_b` differ in the hash part). Redis
    prefixes add a trailing ':' so that no tenant's prefix is a prefix of another's.
    """
    validate_tenant(tenant)
    digest = hashlib.sha1(tenant.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9]", "_", tenant)[: MAX_BACKEND_NAME - len("mc__") - len(digest)]
    return f"mc_{readable}_{digest}"
