"""Score fusion (issue 30): parts normalised on training clips' scores and summed; its scorer record checked."""

import numpy as np
import pytest

from common.errors import ModelError
from common.scoring.fusion import fuse, fused_head, normaliser, part_head
from common.scoring.knn import cosine_knn
from common.scoring.mahalanobis import fit_gaussian, selective, to_arrays
from common.scoring.scorer import check_scorer, needs_network, score_clips

N_MELS = 4


@pytest.mark.parametrize("scores, expected", [
    ([1.0, 2.0, 3.0, 6.0], (3.0, np.std([1.0, 2.0, 3.0, 6.0]))),
    ([2.5], (2.5, 2.5)),  # one clip: the score as a ratio to it
    ([-4.0, -4.0], (-4.0, 4.0)),  # no spread: the mean's size
    ([0.0, 0.0], (0.0, 1.0)),
])
def test_each_part_is_scaled_by_its_training_clips_mean_and_spread(scores, expected):
    assert normaliser(scores) == pytest.approx(expected)


def test_fuse_sums_each_parts_normalised_scores():
    parts = [{"mean": 1.0, "scale": 2.0}, {"mean": -1.0, "scale": 0.5}]
    got = fuse([np.array([3.0, 1.0]), np.array([0.0, -1.5])], parts)
    np.testing.assert_allclose(got, [(3 - 1) / 2 + (0 + 1) / 0.5, 0 + (-1.5 + 1) / 0.5])


def test_fused_head_keeps_each_parts_arrays_under_its_prefix():
    a, b = {"bank": np.ones((2, 3))}, {"mean_0": np.zeros(3), "precision_0": np.eye(3)}
    prefixes, head = fused_head([a, None, b])
    assert prefixes == ["p0_", "p1_", "p2_"] and sorted(head) == ["p0_bank", "p2_mean_0", "p2_precision_0"]
    assert part_head(head, "p2_").keys() == b.keys() and part_head(head, "p1_") == {}


def _clips(rng, n_clips, frames=6):
    vectors = rng.normal(size=(n_clips * frames, N_MELS))
    return vectors, np.arange(0, n_clips * frames + 1, frames)


def _fused_model(rng):
    """A real two-part fused scorer (Gaussian + kNN on log-mel statistics), fitted on training clips only."""
    from common.features.clipvectors import logmel_stats

    train, train_off = _clips(rng, 5)
    rows = logmel_stats(train, train_off, n_mels=N_MELS)
    gaussian, bank = fit_gaussian(rows), rows
    specs = [{"kind": "gaussian", "input": "logmel_stats"}, {"kind": "knn", "input": "logmel_stats", "k": 1}]
    prefixes, head = fused_head([to_arrays([gaussian]), {"bank": bank}])
    train_scores = [selective([gaussian], rows[1:]), cosine_knn(rows[:3], rows[3:])]
    parts = [{"method": m, "scorer": s, "prefix": p, **dict(zip(("mean", "scale"), normaliser(t)))}
             for m, s, p, t in zip(("lw_scratch", "logmel_knn"), specs, prefixes, train_scores)]
    return {"kind": "fusion", "parts": parts}, head, gaussian, bank


def test_a_fused_scorer_scores_clips_as_its_parts_would_summed(rng):
    from common.features.clipvectors import logmel_stats

    spec, head, gaussian, bank = _fused_model(rng)
    vectors, offsets = _clips(rng, 7)
    check_scorer(spec, head, sidecar="m.json")
    assert not needs_network(spec)
    got = score_clips(None, {"kind": "identity"}, spec, head, vectors, offsets, n_mels=N_MELS)
    clips = logmel_stats(vectors, offsets, n_mels=N_MELS)
    a, b = spec["parts"]
    expected = ((selective([gaussian], clips) - a["mean"]) / a["scale"]
                + (cosine_knn(clips, bank) - b["mean"]) / b["scale"])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # A clip's score does not depend on the other clips scored with it.
    np.testing.assert_allclose(score_clips(None, {}, spec, head, vectors[:12], offsets[:3], n_mels=N_MELS), got[:2],
                               rtol=1e-12)


@pytest.mark.parametrize("change, match", [
    (lambda s, h: s.update(parts=s["parts"][:1]), "'parts' must be a list of two or more"),
    (lambda s, h: s.update(parts="p0_"), "'parts' must be a list of two or more"),
    (lambda s, h: s["parts"][1].pop("scale"), "part 1 of the fusion scorer needs"),
    (lambda s, h: s["parts"][0].update(scale=0.0), "part 0 of the fusion scorer needs .* positive scale"),
    (lambda s, h: s["parts"][0].update(scale=True), "positive scale"),
    (lambda s, h: s["parts"][1].update(scorer={"kind": "fusion", "parts": []}), "part 1 .* is itself a fusion"),
    (lambda s, h: h.pop("p1_bank"), r"the knn scorer reads the head arrays \['bank'\]"),
    (lambda s, h: s["parts"][0]["scorer"].update(input="samples"), "unknown scorer input .samples."),
    (lambda s, h: s["parts"][0]["scorer"].update(input="wav"), "needs a .clip_model. of a kind that reads the WAV"),
    (lambda s, h: s["parts"][0]["scorer"].update(input="wav", clip_model={"kind": "identity"}),
     "needs a .clip_model. of a kind that reads the WAV"),
])
def test_a_broken_fused_scorer_is_refused_naming_the_sidecar(rng, change, match):
    spec, head, _, _ = _fused_model(rng)
    change(spec, head)
    with pytest.raises(ModelError, match=match) as info:
        check_scorer(spec, head, sidecar="models/fan_id_00/m.json")
    assert "models/fan_id_00/m.json" in str(info.value)


def test_a_fused_row_reuses_the_parts_results_of_its_own_cell_group_only(tmp_path):
    from types import SimpleNamespace

    from common.data.machines import Machine
    from common.data.versions import SourceSet
    from common.methods.base import Adapted, Cell
    from common.methods.fused import _part, remember

    fan, valve = Machine("fan", "id_00", tmp_path), Machine("valve", "id_00", tmp_path)
    source = SourceSet("valve", (valve,))
    made = Adapted({"kind": "identity"}, [], np.array([1.0, 2.0]), 2, 0.0, scores=np.array([0.5, 0.7]))
    computed = []

    def lw_transfer(data):
        computed.append(data.cell)
        return made

    memo = {}
    part_cell = Cell(fan, source, "lw_transfer", 4, 0)
    kept = Adapted({"kind": "identity"}, [], np.array([3.0]), 1, 0.0)
    remember(memo, part_cell, kept, np.array([9.0, 8.0]))
    remember(memo, Cell(fan, source, "embed_zero_shot", 4, 0), made, np.zeros(2))  # not a part: not kept
    assert len(memo) == 1
    fused_cell = SimpleNamespace(cell=Cell(fan, source, "fusion_transfer", 4, 0), memo=memo)
    adapted, scores = _part(fused_cell, "lw_transfer", lw_transfer)
    assert adapted is kept and scores.tolist() == [9.0, 8.0] and not computed
    # Another seed is another group: its parts are computed, and the first group's results are dropped.
    other = SimpleNamespace(cell=Cell(fan, source, "fusion_transfer", 4, 1), memo=memo)
    adapted, scores = _part(other, "lw_transfer", lw_transfer)
    assert adapted is made and scores.tolist() == [0.5, 0.7] and len(computed) == 1
    remember(memo, Cell(fan, source, "lw_transfer", 4, 1), made, scores)
    assert len(memo) == 1 and _part(fused_cell, "lw_transfer", lw_transfer)[0] is made and len(computed) == 2


def test_a_part_on_the_clips_samples_reads_the_vectors_its_clip_model_makes(rng):
    from common.features.clipvectors import logmel_stats
    from common.features.modulation import ARCHITECTURE
    from common.scoring.scorer import wav_models

    spec, head, gaussian, bank = _fused_model(rng)
    clip_model = dict(ARCHITECTURE) | {"input_dim": 3}
    samples_bank = rng.normal(size=(4, 3))
    spec["parts"][1]["scorer"] = {"kind": "knn", "input": "wav", "k": 1, "clip_model": clip_model}
    head = {**{k: v for k, v in head.items() if not k.startswith("p1_")}, "p1_bank": samples_bank}
    check_scorer(spec, head, sidecar="m.json")
    assert wav_models(spec) == [clip_model]
    vectors, offsets = _clips(rng, 3)
    per_clip = rng.normal(size=(3, 3))
    asked = []
    got = score_clips(None, {}, spec, head, vectors, offsets, n_mels=N_MELS,
                      wav=lambda arch: asked.append(arch) or per_clip)
    assert asked == [clip_model]
    a, b = spec["parts"]
    clips = logmel_stats(vectors, offsets, n_mels=N_MELS)
    expected = ((selective([gaussian], clips) - a["mean"]) / a["scale"]
                + (cosine_knn(per_clip, samples_bank) - b["mean"]) / b["scale"])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ModelError, match="needs the clips' WAV files"):
        score_clips(None, {}, spec, head, vectors, offsets, n_mels=N_MELS)
