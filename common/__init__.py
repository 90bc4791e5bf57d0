"""Machine-sound anomaly detection with pretraining and transfer learning on MIMII-layout data.

Data flows one way: WAV -> log-mel vectors -> model -> clip scores -> metrics -> results and plots, and the
subpackages follow it; each subpackage's docstring places its modules. A layer imports only the layers
before it (``tests/test_code_shape.py`` enforces it; the kernel at the top is open to all):

    `data`        which clips: names on disk, machines, splits, the LAYOUTS table, versions, checks, the generator
    `features`    clip -> vectors: WAV reading, log-mel, the feature cache, clip statistics (imports the kernel only)
    `models`      networks and their files: MODEL_KINDS, autoencoder, classifier, training, save/load (no config)
    `scoring`     vectors + model -> clip scores -> metrics, thresholds, official scores (no config)
    `methods`     METHODS_CATALOG (every method's facts), one module per family, the registry joining them
    `experiment`  the grid: plan, pretrain, run cells (here or on Dask), store rows; advice for a new machine
    `report`      results -> statistics, words, figures, official and published scores (Keras-free)

The kernel, at the top:

    `config`      YAML (``defaults.yaml``) -> a frozen, validated Config
    `results`     the result columns (`ResultRow`), writing and reading the CSVs
    `deploy`      score new recordings with a saved model; export a model with its card
    `demo`        synthetic data -> v1-v5 -> report, at demo sizes
    `notebooks`   write the notebooks from ``notebook_templates/``; run one headless
    `backend`     pick the Keras backend before Keras loads
    `environment` what the running kernel has (package versions, backend, accelerators)
    `errors`      the error family; every message names the file, key or machine at fault
    `io`          atomic writes, file fingerprints and the one digest behind every key
    `lock`        one run at a time per result or model folder

Adding a method: one row in `methods.catalog.METHODS_CATALOG` and one function in its family module (listed in
that module's ``FUNCTIONS``). Adding a data-set layout: one row in `data.layouts.LAYOUTS` and the module that
reads its names. ``python -m common --help`` lists the commands.

Importing the package sets one default, deliberately: ``KERAS_BACKEND`` to the fastest installed backend when
neither the user nor a config chose one and Keras is not loaded yet (`backend.prefer_fastest`). It must run
before any module imports Keras, and only the package's ``__init__`` runs before all of them.
"""

from common.backend import prefer_fastest

prefer_fastest()  # before any module of the package imports Keras; KERAS_BACKEND still wins

__version__ = "0.1.0"
