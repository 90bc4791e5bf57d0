"""Two-bank kNN scores and SMOTE banks (issue 30): the rules, bank-only normalisation, errors, a domain-shift toy."""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances, roc_auc_score
from sklearn.neighbors import NearestNeighbors

from common.errors import MetricError


from common.scoring import two_bank as tb


def plain_knn(queries, bank, *, k=1, metric="cosine"):
    nn = NearestNeighbors(n_neighbors=min(k, len(bank)), metric=metric, algorithm="brute").fit(bank)
    return nn.kneighbors(queries)[0].mean(axis=1)


def loo(bank, *, k=1, metric="cosine"):
    """Each bank row's mean distance to its k nearest other rows, from the full distance matrix."""
    m = pairwise_distances(bank, metric=metric)
    np.fill_diagonal(m, np.inf)
    return np.sort(m, axis=1)[:, :min(k, len(bank) - 1)].mean(axis=1)


@pytest.fixture
def banks(rng):
    """A source bank, a target bank and evaluation clips (positive, like log-mel statistics)."""
    return rng.normal(5, 1, size=(40, 6)), rng.normal(5.5, 1, size=(7, 6)), rng.normal(5.2, 1.2, size=(25, 6))


@pytest.mark.parametrize("k", [1, 3, 50])
def test_target_only_is_the_plain_cosine_knn_distance(banks, k):
    _, target, queries = banks
    np.testing.assert_array_equal(tb.two_bank_scores(queries, None, target, k=k), plain_knn(queries, target, k=k))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_the_score_is_the_smaller_of_the_two_banks(banks, metric):
    source, target, queries = banks
    d_source, d_target = plain_knn(queries, source, metric=metric), plain_knn(queries, target, metric=metric)
    assert (d_source < d_target).any() and (d_target < d_source).any(), "both banks must win somewhere"
    scores = tb.two_bank_scores(queries, source, target, metric=metric)
    np.testing.assert_allclose(scores, np.minimum(d_source, d_target), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_mean_and_zscore_use_each_banks_leave_one_out_distances(banks, k):
    source, target, queries = banks
    own_s, own_t = loo(source, k=k), loo(target, k=k)
    d_s, d_t = plain_knn(queries, source, k=k), plain_knn(queries, target, k=k)
    np.testing.assert_allclose(tb.self_distances(source, k=k), own_s, rtol=1e-9)
    mean = tb.two_bank_scores(queries, source, target, k=k, normalise="mean")
    np.testing.assert_allclose(mean, np.minimum(d_s / own_s.mean(), d_t / own_t.mean()), rtol=1e-9)
    z = tb.two_bank_scores(queries, source, target, k=k, normalise="zscore")
    expected = np.minimum((d_s - own_s.mean()) / own_s.std(), (d_t - own_t.mean()) / own_t.std())
    np.testing.assert_allclose(z, expected, rtol=1e-9, atol=1e-12)


def test_local_divides_each_distance_by_that_rows_density(banks):
    _, target, queries = banks
    ratios = pairwise_distances(queries, target, metric="cosine") / loo(target, k=3)[None, :]
    expected = np.sort(ratios, axis=1)[:, :2].mean(axis=1)
    np.testing.assert_allclose(tb.two_bank_scores(queries, None, target, k=2, normalise="local", k_ref=3),
                               expected, rtol=1e-9)


@pytest.mark.parametrize("normalise", list(tb.NORMALISATIONS))
def test_a_clips_score_does_not_depend_on_the_other_evaluation_clips(banks, rng, normalise):
    source, target, queries = banks
    alone = tb.two_bank_scores(queries[:5], source, target, normalise=normalise, k=2)
    others = np.vstack([queries[:5], 100 * rng.normal(size=(30, 6)) + 50])  # far, many, unlike any bank row
    together = tb.two_bank_scores(others, source, target, normalise=normalise, k=2)
    np.testing.assert_allclose(together[:5], alone, rtol=1e-12)


def test_duplicate_bank_rows_are_not_their_own_neighbours():
    bank = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(tb.self_distances(bank, k=1), [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(tb.self_distances(bank, k=2), [0.5, 0.5, 1.0], atol=1e-12)


def _on_a_neighbour_segment(row, bank, neighbours) -> bool:
    for i, js in enumerate(neighbours):
        for j in js:
            step = bank[j] - bank[i]
            u = (row - bank[i]) @ step / (step @ step)
            if -1e-12 <= u <= 1 + 1e-12 and np.allclose(bank[i] + u * step, row, atol=1e-9):
                return True
    return False


@pytest.mark.parametrize("k", [1, 2])
def test_smote_rows_lie_between_a_clip_and_one_of_its_k_neighbours(rng, k):
    bank = rng.normal(size=(6, 3))
    neighbours = NearestNeighbors(n_neighbors=k).fit(bank).kneighbors(return_distance=False)
    out = tb.smote_bank(bank, 60, k=k, seed=3)
    assert out.shape == (60, 3)
    np.testing.assert_array_equal(out[:6], bank)
    assert all(_on_a_neighbour_segment(row, bank, neighbours) for row in out[6:])
    assert len(np.unique(out[6:].round(12), axis=0)) == 54, "every synthetic row is a new point"


def test_smote_is_deterministic_per_seed(rng):
    bank = rng.normal(size=(4, 5))
    a, b = tb.smote_bank(bank, 20, k=2, seed=7), tb.smote_bank(bank, 20, k=2, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, tb.smote_bank(bank, 20, k=2, seed=8))


def test_smote_of_one_clip_is_the_clip_and_of_two_uses_the_other(rng):
    one = rng.normal(size=(1, 4))
    np.testing.assert_array_equal(tb.smote_bank(one, 10, k=2, seed=0), one)
    two = rng.normal(size=(2, 4))
    out = tb.smote_bank(two, 12, k=5, seed=0)  # k capped at the one other clip
    assert out.shape == (12, 4) and _on_a_neighbour_segment(out[-1], two, [[1], [0]])
    np.testing.assert_array_equal(tb.smote_bank(two, 2, k=1, seed=0), two)


@pytest.mark.parametrize("call, match", [
    (lambda q, s, t: tb.two_bank_scores(q, s, t, k=0), "k=0"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t, k=1.5), "k=1.5"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t, metric="manhattan"), "metric='manhattan'"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t, normalise="minmax"), "normalise='minmax'"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t, normalise="local", k_ref=0), "k_ref=0"),
    (lambda q, s, t: tb.two_bank_scores(q[:, :3], s, t), "eval_emb has 3 values"),
    (lambda q, s, t: tb.two_bank_scores(q, s[:0], t), "source_bank must be a non-empty"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t[0]), "target_bank must be a non-empty 2-D"),
    (lambda q, s, t: tb.two_bank_scores(np.full_like(q, np.nan), s, t), "eval_emb has non-finite"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t[:1], normalise="mean"), "target_bank has 1 row"),
    (lambda q, s, t: tb.two_bank_scores(q, s, t[:2], normalise="zscore"), "target_bank: normalise='zscore'"),
    (lambda q, s, t: tb.two_bank_scores(q, s, np.vstack([t[:1], t[:1]]), normalise="mean"), "duplicate rows"),
    (lambda q, s, t: tb.smote_bank(t, 3, k=2, seed=0), "n_total=3"),
    (lambda q, s, t: tb.smote_bank(t, 20, k=0, seed=0), "k=0"),
    (lambda q, s, t: tb.smote_bank(t, 20, k=2, seed=-1), "seed=-1"),
    (lambda q, s, t: tb.smote_bank(t, 20.0, k=2, seed=0), "n_total=20.0"),
    (lambda q, s, t: tb.self_distances(t[:1]), "bank has 1 row"),
])
def test_bad_arguments_raise_errors_naming_them(banks, call, match):
    source, target, queries = banks
    with pytest.raises(MetricError, match=match):
        call(queries, source, target)
    assert issubclass(MetricError, ValueError)


def domain_shift_toy(rng, *, n_target):
    """Normals vary along a state shared by every machine (e1); target normals sit apart (e2); faults move e3.

    The big source bank covers every state; the few target clips were recorded in one narrow range of
    states, so a target normal in another state is far from them, while anomalies are far from both banks.
    """
    def normals(n, shift, states=(-1.0, 1.0)):
        x = 0.1 * rng.normal(size=(n, 8))
        x[:, 0] += 10.0  # a large common part, as log-mel statistics have
        x[:, 1] += 3.0 * rng.uniform(*states, size=n)
        x[:, 2] += shift
        return x

    abnormal = normals(50, 0.5)
    abnormal[:, 3] += 1.0
    queries = np.vstack([normals(50, 0.5), abnormal])
    return normals(200, 0.0), normals(n_target, 0.5, states=(-0.2, 0.2)), queries, np.repeat([0, 1], 50)


def test_two_banks_beat_the_target_alone_under_domain_shift_with_two_clips(rng):
    source, target, queries, y_true = domain_shift_toy(rng, n_target=2)
    target_only = roc_auc_score(y_true, tb.two_bank_scores(queries, None, target))
    two_bank = roc_auc_score(y_true, tb.two_bank_scores(queries, source, target))
    assert two_bank > target_only + 0.1, (two_bank, target_only)
    assert two_bank > 0.95


def test_on_clips_of_the_generator_target_only_equals_the_repositorys_knn(tiny_root):
    from common.features.clipvectors import logmel_stats
    from common.data.mimii import find_machines, split_machine
    from common.features.extract import extract
    from common.scoring.knn import cosine_knn

    sizes = {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256}
    machines = find_machines(tiny_root, types=["fan"])
    splits = [split_machine(m) for m in machines]

    def rows(files):
        return logmel_stats(*extract(files, progress=False, jobs=1, **sizes), n_mels=sizes["n_mels"])

    target, source, queries = rows(splits[0].train), rows(splits[1].train), rows(splits[0].eval_files)
    np.testing.assert_allclose(tb.two_bank_scores(queries, None, target), cosine_knn(queries, target), rtol=1e-12)
    scores = tb.two_bank_scores(queries, source, tb.smote_bank(target, 12, k=2, seed=0), normalise="zscore")
    assert scores.shape == (len(splits[0].eval_files),) and np.all(np.isfinite(scores))
