"""Machine-sound anomaly detection with pretraining and transfer learning on MIMII-layout data.

Data flows one way: WAV -> log-mel vectors -> model -> clip scores -> metrics -> results and plots.
Each module has one job; read them in this order (``python -m common --help`` lists the commands).

Science path
    `audio`        load one channel of a WAV file, fast and safely; validate the samples
    `feature_params` the log-mel parameters (names, defaults) in one record; the numerics read it, not `config`
    `logmel`       log-mel numerics of one clip and its stacked frame vectors (MIMII baseline parity)
    `features`     many WAV files -> vectors + offsets
    `cache`        those vectors on disk, keyed by every parameter and file, and read back (`VectorSet`)
    `autoencoder`  build the dense autoencoder (and the identity model of the methods without a network)
    `model_kinds`  the kinds of model in one table (`MODEL_KINDS`): build, describe, load, hold weights
    `model`        save / load a model of any kind, and its typed sidecar (`Sidecar`)
    `train`        fit a model from random or given weights; `set_seed`
    `batches`      a `VectorSet`'s training batches, reshuffled per epoch from a seed
    `compiled_fit` the JAX fast path of `train`: many steps per compiled call, one program per shape
    `embedding`    the machine-ID classifier (angular-margin head), its inputs and clip embeddings
    `scoring`      a clip's score: the mean reconstruction error over its vectors
    `clipvectors`  one vector per clip (log-mel statistics), clip halves, out-of-sample training scores
    `knn`          a clip's cosine distance to the nearest normal clips of a bank
    `mahalanobis`  Ledoit-Wolf Gaussians of normal sound and a clip's (selective) Mahalanobis distance
    `scorer`       a saved model's clip scores by the scorer its sidecar records (reconstruction, knn, Gaussian)
    `metrics`      AUC, pAUC and precision / recall / F1 at a threshold
    `official_scores`  the official DCASE Task 2 score of each year (2020-2025) from clip scores, one formula table
    `published`    published DCASE Task 2 official scores (dev and eval sets), each with its source
    `threshold`    a model's decision threshold, fitted on its own training normal clips

Data
    `layout`       names on disk: MIMII folders, version folders, model and row-model paths
    `machines`     what every layout shares: a machine, its split, which files are clips
    `data`         the MIMII layout: find machines in a data root, list their clips, split train / evaluation
    `dcase_layout` DCASE Task 2 roots (2020; 2021-2025): the years, the clip-name rule (read and write), machines,
                   the given split
    `layouts`      every data-set layout in one table (`LAYOUTS`): detect a root's, read its machines, clips, split
    `check`        find bad WAV files before they reach the features (`check-data`)
    `dataset`      a config's machines: their checked splits and cached features
    `synth`        the synthetic MIMII generator: `synth.params` (tables), `synth.dsp` (primitives),
                   `synth.machines` (the four types + background), `synth.dataset` (clips, data sets),
                   `synth.dcase` (the same machines in the DCASE Task 2 layouts, with a target domain),
                   `synth.faults` (fault families: additive, and energy-neutral ones), `synth.worlds`
                   (worlds: a fault family, ID differences and background per row; `synth --world`)
    `download`     the real MIMII data set from Zenodo, resumable and verified
    `download_dcase` the DCASE Task 2 development sets (2020-2025) from Zenodo, the same way, in their layouts

Experiments
    `config`       load and validate a Version YAML into a frozen `Config` (the only YAML reader)
    `backend`      pick the Keras backend before Keras is imported (default: the fastest installed)
    `sources`      the versions v1-v5 in one table: their words and which machines pretrain a target
    `selection`    v5: the other machines ranked by log-mel similarity to a target's budget clips, the top k chosen
    `method_catalog` every method's facts in one table (family, control, pretraining, config sections, words); no Keras
    `methods`      the catalogue joined with the methods' functions (`METHODS`), and the autoencoder family's methods
    `adapt`        what a method gets for a cell and gives back (`CellData`, `Adapted`), its clip scores, shared helpers
    `statistical_methods`  the statistics family (Ledoit-Wolf Gaussians of log-mel clip statistics)
    `embedding_methods`    the embedding family (nearest normal clip in log-mel statistics or a classifier's embedding)
    `embedding_pretrain`   pretrain the machine-ID classifier of a source set, with its zero-shot bank
    `runs`         what must run and what a run records: cells, config hashes, sidecars, reuse checks
    `pretrain`     one model per source set (or found up to date)
    `experiment`   the transfer grid: plan the cells, skip finished ones, `run_cell` the rest, store them
    `executor`     where jobs and cells run: serially here, or as tasks on a local or remote Dask cluster
    `store`        every finished row of a result folder, kept for good (``.store/``)
    `lock`         one run at a time per result or model folder
    `io`           atomic writes, file fingerprints and the one digest behind every key

Results and use
    `results`      the results schema: columns, dtypes, sort order; writing and reading the CSVs
    `stats`        statistics of the comparison, numbers only
    `report`       the cross-version report in words, tables and figures
    `report_official` the report's DCASE official-score tables beside the published ones
    `hindsight`    v5 per target against the best and worst fixed version and k random sources
    `plots`        figures (each function returns a matplotlib Figure)
    `deploy`       score new recordings with a saved model; export a model with its card
    `advise`       rank the known machines as sources for a new machine's clips; the report's best method
    `notebooks`    write the nine notebooks from `notebook_templates/`; run one headless
    `demo`         synthetic data -> v1-v4 -> summary, at demo sizes
    `environment`  what the running kernel has (package versions, backend, accelerators)
    `errors`       the error family; every message names the file, key or machine at fault
"""

from .backend import prefer_fastest

prefer_fastest()  # before any module of the package imports Keras; KERAS_BACKEND still wins

__version__ = "0.1.0"
