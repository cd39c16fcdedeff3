import numpy as np
import pytest

from modelcache.errors import ConfigurationError
from modelcache.verifier import WEIGHTS_DIR
from modelcache.verifier.trees import TreeEnsemble, load_ensemble

INF = np.inf


def tiny() -> TreeEnsemble:
    """Tree 0: x0 <= 0.5 ? (x1 <= 2 ? -1 : 1) : 3.  Tree 1: a single leaf 0.5."""
    return TreeEnsemble(
        feature=np.array([0, 1, 0, 0, 0, 0], np.int32),
        threshold=np.array([0.5, 2.0, INF, INF, INF, INF]),
        left=np.array([1, 2, 2, 3, 4, 5], np.int32),
        right=np.array([4, 3, 2, 3, 4, 5], np.int32),
        value=np.array([0, 0, -1.0, 1.0, 3.0, 0.5]),
        roots=np.array([0, 5], np.int32),
        depth=2,
        base=0.25,
        n_features=2,
    )


def test_raw_scores_follow_the_splits():
    rows = np.array([[0.1, 1.0], [0.1, 5.0], [0.9, 0.0], [0.5, 2.0]])
    expected = np.array([-1.0, 1.0, 3.0, -1.0]) + 0.5 + 0.25
    assert np.allclose(tiny().raw_scores(rows), expected)
    assert np.allclose(tiny().probabilities(rows), 1 / (1 + np.exp(-expected)))


def test_wrong_width_is_rejected():
    with pytest.raises(ValueError, match="2 features"):
        tiny().raw_scores(np.zeros((1, 3)))


def test_save_and_load_round_trip(tmp_path):
    tiny().save(tmp_path / "t.npz")
    loaded = load_ensemble(tmp_path / "t.npz")
    rows = np.random.default_rng(0).uniform(0, 3, size=(50, 2))
    assert np.array_equal(loaded.raw_scores(rows), tiny().raw_scores(rows))


def test_broken_files_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError):
        load_ensemble(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", feature=np.zeros(1, np.int32))
    with pytest.raises(ConfigurationError):
        load_ensemble(tmp_path / "partial.npz")


def test_links_outside_the_nodes_are_rejected():
    with pytest.raises(ConfigurationError):
        TreeEnsemble(
            feature=np.array([0], np.int32),
            threshold=np.array([INF]),
            left=np.array([1], np.int32),
            right=np.array([0], np.int32),
            value=np.array([0.0]),
            roots=np.array([0], np.int32),
            depth=1,
            base=0.0,
            n_features=1,
        )


def reference_raw_score(ensemble: TreeEnsemble, row: np.ndarray) -> float:
    """One row, one tree at a time, the textbook way."""
    total = ensemble.base
    for root in ensemble.roots:
        node = int(root)
        while not (ensemble.left[node] == node and ensemble.right[node] == node):
            go_left = row[ensemble.feature[node]] <= ensemble.threshold[node]
            node = int(ensemble.left[node] if go_left else ensemble.right[node])
        total += ensemble.value[node]
    return total


@pytest.mark.parametrize("name", ["en-fast", "en-full", "zh-fast", "zh-full"])
def test_shipped_ensembles_match_the_reference_walk(name):
    ensemble = load_ensemble(WEIGHTS_DIR / f"{name}.npz")
    rows = np.random.default_rng(1).uniform(-0.2, 1.2, size=(25, ensemble.n_features))
    rows[:, -6:] *= 3  # a few values past the usual ranges
    expected = [reference_raw_score(ensemble, row) for row in rows]
    assert np.allclose(ensemble.raw_scores(rows), expected, rtol=0, atol=1e-12)
