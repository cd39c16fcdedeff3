"""One root exception; each subclass carries its API error code and HTTP status.

Codes are grouped as in the original ModelCache: 1xx request parsing, 2xx query,
3xx insert, 4xx remove, 5xx register. The HTTP layer turns these into JSON at
the edge; nothing below it knows about HTTP.
"""

from __future__ import annotations

__all__ = [
    "OPERATION_CODES",
    "BackendUnavailable",
    "ConfigurationError",
    "InvalidRequest",
    "MissingDependency",
    "ModelCacheError",
]


# Per operation: (invalid request, internal failure, backend unavailable).
OPERATION_CODES: dict[str, tuple[int, int, int]] = {
    "query": (201, 202, 203),
    "insert": (301, 302, 303),
    "remove": (401, 402, 403),
    "register": (501, 502, 503),
}


class ModelCacheError(Exception):
    """Root of every error ModelCache raises on purpose."""

    code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status


class InvalidRequest(ModelCacheError):
    """The caller sent something we cannot accept; nothing was changed."""

    code = 103
    http_status = 422


class BackendUnavailable(ModelCacheError):
    """A storage server or model could not be reached; retry later."""

    code = 203
    http_status = 503

    def __init__(self, backend: str, detail: str):
        super().__init__(f"backend {backend!r} is unavailable: {detail}")
        self.backend = backend


class ConfigurationError(ModelCacheError):
    """The settings name something that does not exist or does not fit."""

    code = 2
    http_status = 500


class MissingDependency(ConfigurationError):
    """An optional backend or model needs a package that is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"this feature needs the {package!r} package: pip install 'modelcache[{extra}]'")
