"""The methods a run scores (``experiment.methods``) and frozen-encoder fine-tuning (``transfer_frozen``), on tiny real data."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import make_config, run_main, write_config
from common.config import load_config
from common.methods.catalog import METHOD_NAMES
from common.errors import ConfigError
from common.data.names import pretrained_model_path, row_model_path
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
    from common.methods.registry import METHODS

    assert make_config(tmp_path, tiny_root).experiment.methods == ("scratch", "zero_shot", "transfer")
    assert tuple(METHODS) == METHOD_NAMES == tuple(sorted(METHOD_ORDER, key=METHOD_ORDER.get))


def _run(pipeline, tmp_path, methods):
    """A transfer run of `methods` beside the shared pipeline: its models, cache and (a copy of) its scratch store."""
    from common.experiment.grid import run_grid

    run = pipeline()
    shutil.copytree(run.scratch, tmp_path / "scratch")
    repo = tmp_path / "repo"
    cfg = make_config(repo / "Version1", run.cfg.data.root, name="transfer_pretrain_v1.yaml",
                      data={"cache_dir": str(run.cache)}, transfer={"init_from": str(run.models)},
                      output={"scratch_dir": str(tmp_path / "scratch"),
                              "result_dir": str(repo / "Version1" / "results")},
                      experiment={"methods": list(methods)})
    return run, cfg, run_grid(cfg, progress=False)


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
    from common.models.saved import load_model

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


# --- the method catalogue (`common.methods.catalog`) and its join with the functions -----------------------

def test_every_catalogue_row_has_a_function_and_every_function_a_row():
    from common.methods.catalog import METHODS_CATALOG
    from common.methods.registry import FUNCTIONS, METHODS

    assert list(METHODS) == list(METHODS_CATALOG)
    assert [f.__name__ for f in FUNCTIONS] == [n for n, info in METHODS_CATALOG.items() if not info.parts]
    for name, method in METHODS.items():
        assert method.info is METHODS_CATALOG[name] and method.adapt.__name__ == name == method.name
        assert method.pretrains == METHODS_CATALOG[name].pretrains


def test_a_row_without_a_function_or_a_function_without_a_row_is_refused_naming_it():
    import dataclasses

    from common.errors import ProjectError
    from common.methods.catalog import METHODS_CATALOG
    from common.methods.registry import FUNCTIONS, join_catalog

    extra_row = {**METHODS_CATALOG, "lw_knn": dataclasses.replace(METHODS_CATALOG["logmel_knn"], name="lw_knn")}
    with pytest.raises(ProjectError, match=r"rows without a function \['lw_knn'\], functions without a row \[\]"):
        join_catalog(extra_row, FUNCTIONS)

    def lw_knn(data):
        return None

    with pytest.raises(ProjectError, match=r"rows without a function \[\], functions without a row \['lw_knn'\]"):
        join_catalog(METHODS_CATALOG, (*FUNCTIONS, lw_knn))
    added = join_catalog(extra_row, (*FUNCTIONS, lw_knn))  # a new method: one row + one function
    assert list(added)[-1] == "lw_knn" and added["lw_knn"].adapt is lw_knn


def test_a_fused_method_is_one_row_with_its_parts_and_a_broken_one_is_refused_naming_it():
    import dataclasses

    from common.errors import ProjectError
    from common.methods.catalog import METHODS_CATALOG
    from common.methods.registry import FUNCTIONS, join_catalog

    row = dataclasses.replace(METHODS_CATALOG["embed_fusion"], name="lw_fusion", parts=("lw_scratch", "logmel_knn"))
    added = join_catalog({**METHODS_CATALOG, "lw_fusion": row}, FUNCTIONS)  # one row, no function
    assert added["lw_fusion"].adapt.__name__ == "lw_fusion"
    assert "lw_scratch + logmel_knn" in added["lw_fusion"].adapt.__doc__

    def lw_fusion(data):
        return None

    with pytest.raises(ProjectError, match=r"functions without a row \['lw_fusion'\].*a fused row has none"):
        join_catalog({**METHODS_CATALOG, "lw_fusion": row}, (*FUNCTIONS, lw_fusion))
    for parts in (("lw_scratch",), ("lw_scratch", "lw_nothing"), ("lw_scratch", "embed_fusion")):
        broken = dataclasses.replace(row, parts=parts)
        with pytest.raises(ProjectError, match=r"fused methods \{'lw_fusion': "):
            join_catalog({**METHODS_CATALOG, "lw_fusion": broken}, FUNCTIONS)


def test_each_family_has_one_control_that_pretrains_nothing_and_scratch_is_the_baseline():
    from common.methods.catalog import (BASELINE, FAMILIES, FAMILY_CONTROL, GENERAL, METHOD_FAMILY, METHODS_CATALOG,
                                       MODEL_PRETRAININGS, STATISTICS, ZERO_SHOT_METHODS)

    assert FAMILIES == ("autoencoder", "statistics", "embedding", "general_sound", "modulation", "fine_spectrum",
                        "fusion")
    assert FAMILY_CONTROL == {"autoencoder": "scratch", "statistics": "lw_scratch", "embedding": "logmel_knn",
                              "general_sound": "sound_random_knn", "modulation": "mod_scratch",
                              "fine_spectrum": "fine_scratch", "fusion": "fusion_scratch"}
    assert BASELINE == FAMILY_CONTROL[METHOD_FAMILY[BASELINE]] == METHOD_NAMES[0]
    for name, info in METHODS_CATALOG.items():
        control = METHODS_CATALOG[info.control]
        assert control.family == info.family and control.pretrains is None and control.control == info.control
        assert info.pretrains in (*MODEL_PRETRAININGS, STATISTICS, GENERAL, None)
        # A zero-shot method is a pretrained model as is; every other method pretraining nothing is its family's control.
        assert not info.zero_shot or info.pretrains in MODEL_PRETRAININGS
        assert info.pretrains is not None or name == info.control
    assert ZERO_SHOT_METHODS == ("zero_shot", "embed_zero_shot")


def test_a_methods_config_sections_are_config_sections_and_enter_its_rows_hash(tmp_path, tiny_root):
    import dataclasses

    from common.config import Config
    from common.methods.catalog import METHODS_CATALOG
    from common.experiment.plan import run_hash

    fields = {f.name for f in dataclasses.fields(Config)}
    assert all(set(info.sections) <= fields for info in METHODS_CATALOG.values())
    a = make_config(tmp_path, tiny_root, name="a.yaml", statistics={"source_clips": 3})
    b = make_config(tmp_path, tiny_root, name="b.yaml", statistics={"source_clips": 4})
    for name, info in METHODS_CATALOG.items():
        assert (run_hash(a, name) != run_hash(b, name)) == ("statistics" in info.sections), name
    assert run_hash(a, "scratch") == run_hash(a, None) == run_hash(a, "an_older_method")



def test_holding_a_set_as_frames_changes_no_key_and_the_in_memory_limit_does(tmp_path, tiny_root):
    """fit.max_frames_mb gives the same weights bit for bit, so no row or model is made stale by it; a set trained in
    RAM rather than streamed is shuffled otherwise, so fit.max_in_memory_mb stays in every key."""
    from common.experiment.plan import run_hash
    from common.methods.base import fit_identity
    from common.methods.catalog import METHODS_CATALOG

    a = make_config(tmp_path, tiny_root, name="a.yaml")
    b = make_config(tmp_path, tiny_root, name="b.yaml", fit={"max_frames_mb": 0})
    c = make_config(tmp_path, tiny_root, name="c.yaml", fit={"max_in_memory_mb": 0})
    assert a.fit.max_frames_mb == 1024 and b.fit.max_frames_mb == 0 and fit_identity(a) == fit_identity(b)
    assert all(run_hash(a, name) == run_hash(b, name) != run_hash(c, name) for name in METHODS_CATALOG)

def test_a_fused_methods_rows_hash_holds_its_parts_so_rows_of_other_parts_are_computed_again(tmp_path, tiny_root,
                                                                                              monkeypatch):
    import dataclasses

    from common.experiment.plan import run_hash
    from common.methods import catalog

    cfg = make_config(tmp_path, tiny_root, name="a.yaml")
    before = run_hash(cfg, "fusion_transfer")
    assert before != run_hash(cfg, "fusion_scratch")  # same sections, other parts
    old = dataclasses.replace(catalog.METHODS_CATALOG["fusion_transfer"],
                              parts=("transfer_mahalanobis", "lw_transfer"))  # the row of stop 36
    monkeypatch.setitem(catalog.METHODS_CATALOG, "fusion_transfer", old)
    run_hash.cache_clear()
    try:
        assert run_hash(cfg, "fusion_transfer") != before
        assert run_hash(cfg, "lw_transfer") == run_hash(cfg, "lw_scratch")  # methods without parts: sections only
    finally:
        run_hash.cache_clear()


@pytest.mark.parametrize("method, words", [
    ("scratch", "trained from a random init on the target's clips only"),
    ("transfer", "pretrained on v1_pump (pump/id_00, pump/id_02), then fine-tuned on the target's clips"),
    ("lw_transfer", "covariance of log-mel statistics from pump/id_00, pump/id_02, mean from the target's clips"),
    ("embed_zero_shot", "machine-ID classifier pretrained on v1_pump (pump/id_00, pump/id_02); distance to the "
                        "nearest source clip (no target clips)"),
    ("an_older_method", "an_older_method"),
])
def test_the_model_card_says_how_the_method_made_its_model(method, words):
    from common.deploy import model_card

    card = model_card("m.keras", {"method": method, "source": "v1_pump", "sources": ["pump/id_00", "pump/id_02"]})
    assert f"| method | {method}: {words} |" in card


def test_every_method_has_card_words_with_its_placeholders_filled():
    from common.methods.catalog import METHODS_CATALOG, NO_SOURCE

    for name, info in METHODS_CATALOG.items():
        words = info.card_words(pre="PRE", sources="SRC")
        assert words and "{" not in words and name not in words
        # A method with a source set names it; one without (general sound's weights come from a package) cannot.
        assert ("PRE" in words or "SRC" in words) == (info.pretrains not in NO_SOURCE), name


# Strings equal to a method name that are not a method dispatch: a command or config section named like
# a method ("transfer"), the init_from value refused in config, the demo's method list (config data, as
# a YAML's), the method `export` picks by default and the methods.csv column prefix ``scratch_``.
_NOT_DISPATCH = {("__main__.py", "transfer"), ("experiment/plan.py", "transfer"), ("deploy.py", "transfer"),
                 ("demo.py", "transfer"),  # the YAML section
                 ("report/writer.py", "scratch"), ("report/stats.py", "scratch")}
_METHOD_MODULES = ("methods/catalog.py", "methods/autoencoder.py", "methods/statistics.py", "methods/embedding.py")


def test_no_module_but_the_catalogue_and_the_family_modules_spells_a_method_name():
    import ast
    from pathlib import Path

    import common
    from common.methods.catalog import METHODS_CATALOG

    found = []
    package = Path(common.__file__).parent
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name in _METHOD_MODULES:
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        found += [f"{name}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and id(n) not in docs and n.value in METHODS_CATALOG
                  and (name, n.value) not in _NOT_DISPATCH]
    assert not found, f"method names outside the catalogue and the family modules: {found}"


def test_a_cells_fine_tuned_models_stay_in_the_memo_whatever_runs_between_them(monkeypatch):
    """transfer, transfer_frozen, transfer_mahalanobis (the catalogue's order): the third reuses the first's fit; the
    next cell's first fit evicts the last cell's models."""
    from types import SimpleNamespace

    from common.methods import autoencoder

    fits = []
    monkeypatch.setattr(autoencoder, "_fit_fine_tune", lambda data, freeze: fits.append((data.cell.budget, freeze))
                        or f"model {len(fits)}")
    pretrained = SimpleNamespace(path="v1/model.keras", sidecar=SimpleNamespace(key="k"))

    def data(budget):
        cell = SimpleNamespace(target="fan/id_00", source_label="v1", budget=budget, seed=0)
        return SimpleNamespace(cell=cell, pretrained=pretrained, memo=memo)

    memo = {}
    first = autoencoder._fine_tune(data(2), ())
    autoencoder._fine_tune(data(2), ("enc_1", "bottleneck"))
    assert autoencoder._fine_tune(data(2), ()) == first and fits == [(2, ()), (2, ("enc_1", "bottleneck"))]
    autoencoder._fine_tune(data(4), ())
    assert len(fits) == 3 and [k[3] for k in memo if k[0] == "fine_tune"] == ["4"]
