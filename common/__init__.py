"""Machine-sound anomaly detection with pretraining and transfer learning on MIMII-layout data.

Data flows one way: WAV (`audio`; bad files found by `check`) -> log-mel vectors (`features`) ->
autoencoder (`model`) ->
clip scores (`scoring`) -> AUC/pAUC and decisions at a threshold fitted on training clips (`metrics`,
`threshold`) -> CSVs and plots (`results`, `plots`). A trained model scores new recordings (`deploy`).
Run ``python -m common --help`` for the command-line entry points.
"""

__version__ = "0.1.0"
