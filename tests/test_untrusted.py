"""Issue 27, silently wrong: a clip, cache entry, store entry or pretrained model that is not what the run
believes it is never reaches a result row (overflowing clips, stale pretrained models, mixed settings,
checksummed scratch store and feature cache, results.csv without its store, damaged row models)."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.errors import AudioError
from common.experiment import transfer
from common.layout import row_model_path
from common.pretrain import pretrain
from conftest import make_config, run_main

ROW = {"target_type": "fan", "target_id": "id_00", "source": "none", "method": "scratch", "budget": "all", "seed": 0}


def machine_copy(tiny_root: Path, root: Path, *, ids=("id_00",), types=("fan", "valve")) -> Path:
    """A writable copy of the chosen machines of the tiny set under `root`."""
    for t in types:
        for i in ids:
            rel = Path(f"-6_dB_{t}") / t / i
            shutil.copytree(tiny_root / rel, root / rel)
    return root


def overflowing(path: Path, *, spike: float | None = 3e38, scale: float = 1.0) -> Path:
    """Rewrite `path` as a float WAV whose channel 0 has one sample `spike` (a flipped exponent bit), times `scale`."""
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    data = data * np.float32(scale)
    if spike is not None:
        data[500, 0] = spike
    sf.write(path, data, sr, subtype="FLOAT")
    return path


# --------------------------------------------------------------------------------------------
# A15-A18: a float clip with an overflowing sample is a bad clip, named, everywhere


def test_check_data_names_a_clip_with_an_overflowing_sample(tiny_root, tmp_path):
    """A15: check-data passed a float WAV with one 3e38 sample."""
    root = machine_copy(tiny_root, tmp_path / "data", types=("fan",))
    spike = overflowing(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav")
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == 1, text
    assert re.search(re.escape(str(spike)) + r" has 1 sample\(s\) of magnitude up to 3e\+38, beyond 2\.15e\+09", text)


@pytest.mark.parametrize("method", ["scratch", "logmel_knn"])
def test_score_refuses_a_clip_with_an_overflowing_sample_naming_it(tiny_root, tmp_path, method):
    """A15 (autoencoder: was 'nan  normal', exit 0) and A16 (nearest neighbours: was a sklearn traceback)."""
    root = machine_copy(tiny_root, tmp_path / "data")
    cfg = make_config(tmp_path, root, experiment={"budgets": ["all"], "methods": ["scratch", "logmel_knn"]})
    pretrain(cfg, progress=False)
    transfer(cfg, progress=False)
    model = row_model_path(cfg.output.result_dir, ROW | {"method": method})
    good = tmp_path / "good.wav"
    shutil.copy(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav", good)
    spike = overflowing(Path(shutil.copy(good, tmp_path / "spike.wav")))
    code, text = run_main(["score", "--model", str(model), str(spike), str(good), "--no-progress"])
    assert code == 1, text
    assert "Traceback" not in text and "  nan  " not in text
    assert re.search(re.escape(f"{spike}  error: ") + r".*beyond 2\.15e\+09", text), text
    assert re.search(re.escape(str(good)) + r"  [0-9.e+-]+  (normal|anomalous)", text), text


def test_transfer_names_an_overflowing_eval_clip_or_skips_it(tiny_root, tmp_path):
    """A17: the grid said '1 non-finite scores for fan/id_00', naming no file."""
    root = machine_copy(tiny_root, tmp_path / "data")
    spike = overflowing(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav")
    cfg = make_config(tmp_path / "err", root, experiment={"budgets": ["all"]})
    pretrain(make_config(tmp_path / "err", root, experiment={"budgets": ["all"]}, data={"on_bad_file": "skip"}),
             progress=False)
    with pytest.raises(AudioError, match=re.escape(str(spike)) + r" has 1 sample\(s\) of magnitude"):
        transfer(cfg, progress=False)
    skip = make_config(tmp_path / "err", root, name="skip.yaml", experiment={"budgets": ["all"]},
                       data={"on_bad_file": "skip"}, output={"result_dir": str(tmp_path / "skip")})
    with pytest.warns(UserWarning, match=r"left out 1 bad clip"):
        results = transfer(skip, progress=False)
    assert np.isfinite(results["auc"]).all() and (results.loc[results["target_type"] == "fan", "n_skipped_clips"] == 1).all()
    assert pd.read_csv(tmp_path / "skip" / "skipped.csv")["path"].tolist() == [str(spike)]
    scores = pd.read_csv(tmp_path / "skip" / "scores.csv")
    assert str(spike) not in set(scores["path"]) and np.isfinite(scores["score"]).all()


def test_pretrain_names_a_training_clip_scaled_beyond_any_full_scale(tiny_root, tmp_path):
    """A18: a float clip x1e25 among the training clips: '5 non-finite training scores', no file named."""
    root = machine_copy(tiny_root, tmp_path / "data")
    loud = overflowing(root / "-6_dB_valve" / "valve" / "id_00" / "normal" / "00000006.wav", spike=None, scale=1e25)
    code, text = run_main(["pretrain", str(make_config(tmp_path, root).source)])
    assert code == 2, text
    assert re.search(re.escape(str(loud)) + r" has \d+ sample\(s\) of magnitude up to [0-9.]+e\+2\d", text), text


def test_features_that_overflow_anyway_are_refused_naming_the_clip(tiny_root, tmp_path):
    """The extraction's own check: samples within range whose log-mel still overflows (a large feature.power)."""
    from common.features import extract

    clip = overflowing(Path(shutil.copy(tiny_root / "-6_dB_fan" / "fan" / "id_00" / "normal" / "00000000.wav",
                                        tmp_path / "loud.wav")), spike=2e9)
    with pytest.raises(AudioError, match=re.escape(str(clip)) + r" gives non-finite log-mel features \(feature\.power=8"):
        extract([clip], channel=0, sr=16000, jobs=1, progress=False, n_mels=16, frames=2, n_fft=512, hop_length=256,
                power=8.0)
