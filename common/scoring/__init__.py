"""Vectors and a model -> clip scores -> metrics: reconstruction, kNN, Mahalanobis, thresholds, AUC, official scores.

    `reconstruction` an autoencoder's clip scores (mean reconstruction error per clip)
    `knn`          cosine nearest-neighbour distances
    `two_bank`     the few-clip kNN of the field: min over a source and a target bank, SMOTE-enlarged banks
    `mahalanobis`  Gaussians and (selective) Mahalanobis distances
    `fusion`       several scorers' scores, each normalised on training clips' scores, summed
    `scorer`       a saved model's scorer record -> clip scores (every kind of head)
    `threshold`    the decision threshold from training scores
    `metrics`      AUC, pAUC, precision/recall/F1
    `official`     the DCASE official scores (harmonic means as the evaluators compute them)

May import the kernel, `features` and `models`; never `config`, `data`, `methods`, `experiment` or `report`.
"""
