"""One Settings object, read once: defaults < settings file < environment < arguments.

The settings file is TOML. It is found by `MODELCACHE_CONFIG` (a path) or, failing that,
by `MODELCACHE_PROFILE` (`dev`, `prepub`, `prod`) as `<MODELCACHE_CONFIG_DIR>/<profile>.toml`
(the directory defaults to `./config`). Every field can be set in the environment as
`MODELCACHE_<FIELD>` (for example `MODELCACHE_PORT=5001`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modelcache.errors import ConfigurationError

__all__ = ["PROFILES", "Settings", "settings_file"]

PROFILES = ("dev", "prepub", "prod")


def settings_file() -> Path | None:
    """The TOML file the environment points at, or None for defaults only."""
    explicit = os.environ.get("MODELCACHE_CONFIG")
    if explicit:
        return Path(explicit)
    profile = os.environ.get("MODELCACHE_PROFILE")
    if not profile:
        return None
    if profile not in PROFILES:
        raise ConfigurationError(f"MODELCACHE_PROFILE must be one of {PROFILES}, not {profile!r}")
    return Path(os.environ.get("MODELCACHE_CONFIG_DIR", "config")) / f"{profile}.toml"


def _file_values() -> dict[str, Any]:
    path = settings_file()
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read settings file {path}: {exc}") from exc


class Settings(BaseSettings):
    """Everything configurable, with the embedded default as the default."""

    model_config = SettingsConfigDict(env_prefix="MODELCACHE_", extra="forbid")

    # serving
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "info"

    # storage: URLs; empty means the embedded default under data_dir
    data_dir: Path = Path("data")
    row_store: str = ""
    vector_index: str = ""

    # embedding
    embedder: str = "use"
    embedder_options: dict[str, Any] = Field(default_factory=dict)
    embed_threads: int = Field(default=1, ge=1)
    batch_max_size: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=0.0, ge=0)

    # how a hit is decided (README, "Presets"): `default` by the second-stage verifier
    # (which embeds unsure queries again with e5-small) wherever the query has at least
    # `verifier_min_candidates` same-context candidates, by the cosine thresholds below in
    # smaller tenants; `precise` by the verifier always; `fast` by the cosine thresholds only
    preset: Literal["default", "fast", "precise"] = "default"
    verifier_min_candidates: int = Field(default=10, ge=1)
    # `default` in a smaller tenant: the verifier still rejects a cosine hit it is confident
    # is wrong ("sort a list" for "reverse a list"); False leaves such tenants to cosine alone
    verifier_veto: bool = True
    # a local cross-encoder directory: when set, it decides hits instead (not with `fast`)
    reranker: str = ""
    reranker_threshold: float = Field(default=0.5, ge=0, le=1)
    reranker_min_cosine: float = Field(default=0.5, ge=-1, le=1)

    # similarity (cosine, see calibration/README.md for how the defaults were chosen)
    threshold_short: float = Field(default=0.80, ge=-1, le=1)
    threshold_long: float = Field(default=0.74, ge=-1, le=1)
    long_text_cutoff: int = Field(default=20, ge=1)
    top_k: int = Field(default=10, ge=1, le=1000)
    include_assistant_turns: bool = False

    # vector index (FAISS)
    faiss_threads: int = Field(default=1, ge=1)
    # a tenant with more entries than this moves from exact search to an IVF index, which
    # scans the `faiss_nprobe` cells nearest each query (see storage/faiss_index.py)
    faiss_approx_above: int = Field(default=50_000, ge=1)
    faiss_nprobe: int = Field(default=16, ge=1)
    index_save_interval_s: float = Field(default=5.0, gt=0)

    # query log
    query_log_enabled: bool = True
    query_log_batch_size: int = Field(default=256, ge=1)
    query_log_flush_interval_s: float = Field(default=0.5, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[Any, ...]:
        return (init_settings, env_settings, _file_values)

    def row_store_url(self) -> str:
        return self.row_store or f"sqlite:///{self.data_dir / 'modelcache.db'}"

    def vector_index_url(self) -> str:
        return self.vector_index or f"faiss:///{self.data_dir / 'faiss'}"
