"""The methods a run scores (``experiment.methods``) and frozen-encoder fine-tuning (``transfer_frozen``), on tiny real data."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import make_config, run_main, write_config
from common.config import METHOD_NAMES, load_config
from common.errors import ConfigError
from common.layout import pretrained_model_path, row_model_path
from common.results import METHOD_ORDER

FROZEN = ("scratch", "transfer_frozen")
AE_METHODS = ("scratch", "zero_shot", "transfer", "transfer_frozen")  # the autoencoder pretraining of the pipeline


@pytest.mark.parametrize("methods, message", [
    (["scratch", "transfer_frozn"], r"unknown method 'transfer_frozn' \(did you mean 'transfer_frozen'\?\); valid "
                                    r"methods: scratch, zero_shot, transfer, transfer_frozen, transfer_mahalanobis"),
    ([], r"must be a non-empty list of methods out of: scratch, zero_shot"),
    (["scratch", "transfer", "transfer"], r"lists transfer more than once"),
    (["transfer", "zero_shot"], r"must include 'scratch', the baseline"),
    ("scratch", r"must be a list"),
])
def test_bad_methods_are_refused_naming_the_key_and_the_yaml(tmp_path, tiny_root, methods, message):
    path = write_config(tmp_path, tiny_root, experiment={"methods": methods})
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: 'experiment\.methods'.*{message}"):
        load_config(path)


def test_default_methods_are_the_three_of_before_and_every_name_is_in_the_table(tmp_path, tiny_root):
    from common.methods import METHODS

    assert make_config(tmp_path, tiny_root).experiment.methods == ("scratch", "zero_shot", "transfer")
    assert tuple(METHODS) == METHOD_NAMES == tuple(sorted(METHOD_ORDER, key=METHOD_ORDER.get))


def _run(pipeline, tmp_path, methods):
    """A transfer run of `methods` beside the shared pipeline: its models, cache and (a copy of) its scratch store."""
    from common.experiment import transfer

    run = pipeline()
    shutil.copytree(run.scratch, tmp_path / "scratch")
    repo = tmp_path / "repo"
    cfg = make_config(repo / "Version1", run.cfg.data.root, name="transfer_pretrain_v1.yaml",
                      data={"cache_dir": str(run.cache)}, transfer={"init_from": str(run.models)},
                      output={"scratch_dir": str(tmp_path / "scratch"),
                              "result_dir": str(repo / "Version1" / "results")},
                      experiment={"methods": list(methods)})
    return run, cfg, transfer(cfg, progress=False)


@pytest.fixture(scope="module")
def frozen(pipeline, tmp_path_factory):
    return _run(pipeline, tmp_path_factory.mktemp("frozen"), FROZEN)


def test_a_run_scores_exactly_the_listed_methods(frozen):
    run, _, results = frozen
    assert set(results["method"]) == set(FROZEN)
    keys = ["target_type", "target_id", "source", "budget", "seed"]
    frozen_rows = results[results["method"] == "transfer_frozen"].set_index(keys)
    transfer_rows = run.results[run.results["method"] == "transfer"].set_index(keys)
    assert sorted(frozen_rows.index) == sorted(transfer_rows.index)  # one per transfer cell of before
    scratch = results[results["method"] == "scratch"].set_index(keys)["auc"]
    before = run.results[run.results["method"] == "scratch"].set_index(keys)["auc"]
    pd.testing.assert_series_equal(scratch.sort_index(), before.sort_index())
    assert frozen_rows["auc"].between(0, 1).all()


def _weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}


def test_transfer_frozen_keeps_the_pretrained_encoder_and_fine_tunes_the_decoder(frozen):
    from common.model import load_model

    run, cfg, results = frozen
    row = results[results["method"] == "transfer_frozen"].iloc[0].to_dict()
    tuned, sidecar = load_model(row_model_path(cfg.output.result_dir, row))
    pretrained, _ = load_model(pretrained_model_path(run.models, row["source"]))
    after, before = _weights(tuned), _weights(pretrained)
    assert sidecar["method"] == "transfer_frozen" and sidecar["transfer"]["freeze"] == ["enc_1", "bottleneck"]
    for name in ("enc_1", "bottleneck"):
        for a, b in zip(after[name], before[name]):
            np.testing.assert_array_equal(a, b)
    for name in ("dec_1", "output"):
        assert any(not np.allclose(a, b) for a, b in zip(after[name], before[name])), f"{name} did not train"
    # full fine-tuning (transfer) of the same cell moves the encoder too
    full = run.results[(run.results["method"] == "transfer") & (run.results["source"] == row["source"])
                       & (run.results["target_type"] == row["target_type"])
                       & (run.results["target_id"] == row["target_id"]) & (run.results["budget"] == row["budget"])]
    transferred, _ = load_model(row_model_path(run.cfg.output.result_dir, full.iloc[0].to_dict()))
    assert not np.allclose(_weights(transferred)["enc_1"][0], before["enc_1"][0])


def test_report_over_results_with_transfer_frozen(frozen):
    _, cfg, _ = frozen
    repo = cfg.source.parent.parent
    code, out = run_main(["report", "--repo", str(repo)])
    assert code == 0, out
    comparison = pd.read_csv(repo / "report" / "comparison.csv")
    assert set(comparison["method"]) == {"transfer_frozen"}
    text = (repo / "report" / "report.md").read_text()
    assert "### transfer_frozen" in text and "### transfer\n" not in text


def test_all_four_methods_leave_the_default_rows_unchanged_and_report(pipeline, tmp_path):
    run, cfg, results = _run(pipeline, tmp_path, AE_METHODS)
    assert set(results["method"]) == set(AE_METHODS)
    old = results[results["method"] != "transfer_frozen"].drop(columns=["train_seconds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(old, run.results.drop(columns=["train_seconds"]).reset_index(drop=True))
    code, out = run_main(["report", "--repo", str(cfg.source.parent.parent)])
    assert code == 0, out
    comparison = pd.read_csv(cfg.source.parent.parent / "report" / "comparison.csv")
    assert list(dict.fromkeys(comparison["method"])) == ["zero_shot", "transfer", "transfer_frozen"]
