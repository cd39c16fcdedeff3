"""The contract suite runs every test on each storage combination, against real servers.

A combination names a row store and a vector index. `sqlite` and `faiss` are the embedded
default (files under the test's tmp_path); every other name is a backend fixture from
tests/backends that yields a ServerHandle.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelcache import Cache, Settings
from modelcache.embedding.use import UseEmbedder
from tests.backends import COMBINATIONS, combination_id, storage_urls


@pytest.fixture(scope="session")
def use_embedder() -> UseEmbedder:
    embedder = UseEmbedder(threads=1)
    embedder.load()
    return embedder


def settings_for(request: pytest.FixtureRequest, combination: tuple[str, str], data_dir: Path) -> Settings:
    row_url, vector_url = storage_urls(request, combination)
    # The storage contract is checked with cosine decisions (`fast`), which do not depend on
    # how many neighbours a tenant has; the verifier presets have their own tests below.
    return Settings(
        preset="fast",
        data_dir=data_dir,
        row_store=row_url,
        vector_index=vector_url,
        query_log_flush_interval_s=0.05,
        index_save_interval_s=0.2,
    )


@pytest.fixture(params=COMBINATIONS, ids=combination_id)
def combination(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def settings(request: pytest.FixtureRequest, combination: tuple[str, str], tmp_path: Path) -> Settings:
    return settings_for(request, combination, tmp_path)


@pytest.fixture
def cache(settings: Settings, use_embedder: UseEmbedder) -> Iterator[Cache]:
    with Cache(settings, embedder=use_embedder) as started:
        yield started


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test, so tests can share servers."""
    return f"t-{uuid.uuid4().hex[:12]}"
