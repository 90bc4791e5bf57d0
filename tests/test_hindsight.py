"""The hindsight comparison of v5: known values per target (best / worst fixed version, random, regret)."""

import numpy as np
import pandas as pd

from common.report.hindsight import HINDSIGHT_COLUMNS, hindsight_summary, hindsight_table

# target -> version -> {source: auc}: v1's mean is over its two sources; v5 chose one set
AUCS = {
    "fan": {"v1": {"pump": 0.6, "valve": 0.8}, "v4": {"pump+valve": 0.9}, "v5": {"pump_id_00": 0.85}},
    "pump": {"v1": {"fan": 0.5, "valve": 0.5}, "v4": {"fan+valve": 0.6}, "v5": {"fan_id_00": 0.7}},
}
RANDOM = {"fan": 0.75, "pump": 0.72}


def _rows(aucs: dict, version_of=lambda v: v) -> pd.DataFrame:
    rows = []
    for target, versions in aucs.items():
        for version, sources in versions.items():
            rows.append({"version": version, "target_type": target, "target_id": "id_00", "source": "none",
                         "method": "scratch", "budget": "2", "seed": 0, "auc": 0.5})
            for source, auc in sources.items():
                rows.append({"version": version, "target_type": target, "target_id": "id_00", "source": source,
                             "method": "transfer", "budget": "2", "seed": 0, "auc": auc})
    return pd.DataFrame(rows)


def test_hindsight_table_has_the_known_values():
    random = _rows({t: {"v5": {"x": auc}} for t, auc in RANDOM.items()})
    table = hindsight_table(_rows(AUCS), random).set_index("target_type")
    assert list(table.reset_index().columns) == HINDSIGHT_COLUMNS and set(table["method"]) == {"transfer"}
    fan, pump = table.loc["fan"], table.loc["pump"]
    assert (fan.best_fixed, fan.worst_fixed) == ("v4", "v1")
    assert np.isclose(fan.best_fixed_auc, 0.9) and np.isclose(fan.worst_fixed_auc, 0.7)  # v1 = mean(0.6, 0.8)
    assert np.isclose(fan.regret, 0.05) and np.isclose(fan.v5_minus_random, 0.10)
    assert np.isclose(pump.regret, -0.1) and np.isclose(pump.v5_minus_worst, 0.2)  # v5 beat every fixed version
    summary = hindsight_summary(table.reset_index(), n_boot=200).iloc[0]
    assert summary.n_targets == 2 and np.isclose(summary.regret_mean, -0.025)
    assert summary.regret_ci_low <= summary.regret_mean <= summary.regret_ci_high
    assert summary.n_v5_at_least_random == 1  # pump: 0.70 < 0.72


def test_without_v5_or_the_random_run():
    assert hindsight_table(_rows({"fan": {"v1": {"pump": 0.6}}})).empty
    table = hindsight_table(_rows(AUCS))
    assert table["random_auc"].isna().all() and table["regret"].notna().all()
