"""The HTTP server."""

from modelcache.server.app import create_app

__all__ = ["create_app"]
