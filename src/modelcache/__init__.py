"""ModelCache: a semantic cache for LLM answers."""

from modelcache.cache import Cache, QueryResult
from modelcache.errors import BackendUnavailable, ConfigurationError, InvalidRequest, ModelCacheError
from modelcache.messages import Message
from modelcache.settings import Settings

__all__ = [
    "BackendUnavailable",
    "Cache",
    "ConfigurationError",
    "InvalidRequest",
    "Message",
    "ModelCacheError",
    "QueryResult",
    "Settings",
]

__version__ = "0.1.0"
