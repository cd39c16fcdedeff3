"""The `modelcache` command, run the way users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODELCACHE = str(Path(sys.executable).parent / "modelcache")

PAIRS = """text_a\ttext_b\tlabel
What is the capital of France?\tWhich city is the capital of France?\t1
How do I reverse a list in Python?\tHow can I reverse a Python list?\t1
How tall is Mount Everest?\tWhat is the height of Mount Everest?\t1
What is the best pizza in Naples?\tHow do I change a car tyre?\t0
How do I learn to swim?\tWhat is the boiling point of water?\t0
"""


def test_calibrate_writes_a_report(tmp_path: Path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(PAIRS)
    out = tmp_path / "report.json"
    done = subprocess.run(
        [MODELCACHE, "calibrate", str(pairs), "--output", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert 0.5 <= report["threshold_short"] <= 0.99
    file_figures = report["per_file"][str(pairs)]
    assert file_figures["queries"] == 5 and file_figures["precision"] == 1.0


def test_calibrate_to_a_target_precision_sets_a_tenant(tmp_path: Path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(PAIRS)
    env = {"MODELCACHE_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    command = [MODELCACHE, "calibrate", str(pairs), "--target-precision", "0.9", "--tenant", "team-a"]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["applied_to_tenant"] == "team-a" and report["short"]["chosen"]["precision"] >= 0.9
    from modelcache import Cache, Settings

    with Cache(Settings(data_dir=tmp_path / "data")) as cache:
        stored = cache.rows.tenant_settings("team-a")
    assert stored == {
        "threshold_short": report["threshold_short"],
        "threshold_long": report["threshold_long"],
    }


def test_rebuild_index_and_errors(tmp_path: Path):
    env = {"MODELCACHE_DATA_DIR": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([MODELCACHE, "rebuild-index"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        [MODELCACHE, "rebuild-index"],
        capture_output=True,
        text=True,
        env={**env, "MODELCACHE_EMBEDDER": "nope"},
    )
    assert bad.returncode == 2 and "unknown embedder 'nope'" in bad.stderr
