"""Which clips: names on disk, machines and their splits, data-set layouts, versions (source sets), checks, the generator.

    `names`        every name on disk: folders, versions, result/model/report files
    `machines`     Machine, Split, budgets, the clip-name rule, clip classes
    `mimii`        the MIMII layout: find machines, list and split clips
    `dcase`        the DCASE Task 2 layouts (2020, 2021-2025): one name rule, the years
    `layouts`      LAYOUTS: per layout, detect, machines, clips, split, ignored files, official year
    `versions`     v1-v5: the source sets of every target and their words
    `selection`    Version5: source machines chosen by similarity to the target's clips
    `check`        bad WAV files, found before a run
    `dataset`      a config's machines: checked splits and cached features
    `download_mimii`, `download_dcase`  fetch and verify the real data sets
    `synth`        the synthetic generator (MIMII and DCASE layouts, fault worlds)

Owns every name on disk (`names`), `Machine`/`Split` and clip classes (`machines`), the MIMII layout (`mimii`),
the DCASE Task 2 name rule and years (`dcase`), the `LAYOUTS` table (`layouts`), the v1-v5 source sets
(`versions`), source selection by similarity (`selection`), bad-WAV checks (`check`), a config's machines with
their cached features (`dataset`), downloads (`download_mimii`, `download_dcase`) and the synthetic generator
(`synth`). May import the kernel, `config` and `features`; never `models`, `scoring`, `methods`, `experiment`
or `report`.
"""
