from pathlib import Path

import pytest

from modelcache import ConfigurationError, Settings


def test_defaults_are_the_embedded_default():
    settings = Settings()
    assert settings.row_store_url() == "sqlite:///data/modelcache.db"
    assert settings.vector_index_url() == "faiss:///data/faiss"
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)


def test_file_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "mc.toml"
    config.write_text('port = 6000\nthreshold_short = 0.9\nrow_store = "mysql://u@h/db"\n')
    monkeypatch.setenv("MODELCACHE_CONFIG", str(config))
    assert Settings().port == 6000 and Settings().threshold_short == 0.9
    monkeypatch.setenv("MODELCACHE_PORT", "7000")
    assert Settings().port == 7000 and Settings().row_store_url() == "mysql://u@h/db"
    assert Settings(port=8000).port == 8000


def test_profiles_read_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "prepub.toml").write_text('vector_index = "milvus://m:19530"\n')
    monkeypatch.setenv("MODELCACHE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("MODELCACHE_PROFILE", "prepub")
    assert Settings().vector_index_url() == "milvus://m:19530"
    monkeypatch.setenv("MODELCACHE_PROFILE", "staging")
    with pytest.raises(ConfigurationError):
        Settings()


def test_shipped_profiles_parse(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELCACHE_CONFIG_DIR", str(Path(__file__).parents[2] / "config"))
    for profile in ("dev", "prepub", "prod"):
        monkeypatch.setenv("MODELCACHE_PROFILE", profile)
        assert Settings().port == 5000


def test_bad_values_and_unknown_fields_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "bad.toml"
    config.write_text("prot = 6000\n")
    monkeypatch.setenv("MODELCACHE_CONFIG", str(config))
    with pytest.raises(ValueError, match="prot"):
        Settings()
    monkeypatch.delenv("MODELCACHE_CONFIG")
    with pytest.raises(ValueError):
        Settings(threshold_short=2)
