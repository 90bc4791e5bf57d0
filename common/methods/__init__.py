"""How a target gets its model: one catalogue of methods, one module per family, one registry joining them.

    `catalog`      METHODS_CATALOG: one MethodInfo per method (Keras-free)
    `registry`     METHODS: the catalogue joined with the family functions, checked both ways
    `base`         Cell, CellData, Adapted, ModelOut/TextOut and the identity keys every run records
    `autoencoder`  scratch, zero_shot, transfer, transfer_frozen, transfer_mahalanobis
    `statistics`   the Ledoit-Wolf Gaussian family
    `embedding`    the kNN family: log-mel statistics or the classifier's embeddings
    `general_sound`  sound_random_knn, sound_knn: the kNN family on SoundNet's clip embeddings (general sound)
    `sample_stats` mod_scratch, mod_transfer, fine_scratch, fine_transfer: Gaussians of statistics of the samples
    `fused`        the fused methods (a row with parts): their parts' scores, normalised on the budget clips, summed

`catalog.METHODS_CATALOG` holds every method's facts (Keras-free); a family module (`autoencoder`,
`statistics`, `embedding`, `general_sound`, `sample_stats`) holds its functions and lists them in its ``FUNCTIONS``
(`fused` makes the fused rows' functions from their parts');
`registry.METHODS` joins the two; `base` is what a cell gives a method and what a method gives back. May import
the kernel, `config`, `data`, `features`, `models` and `scoring`; never `experiment` or `report`.
"""
