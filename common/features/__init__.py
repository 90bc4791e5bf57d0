"""Clip -> vectors: WAV reading, log-mel frames, stacked vectors, the on-disk cache and clip statistics.

    `params`       FeatureConfig: the log-mel parameters (names, defaults, ranges) in one record
    `audio`        load one channel of a WAV file, fast and safely; validate the samples
    `logmel`       log-mel numerics of one clip and its stacked frame vectors (MIMII baseline parity)
    `extract`      many WAV files -> vectors + offsets
    `cache`        those vectors on disk, keyed by every parameter and file, checked on every load
    `vectorset`    rows of several (memory-mapped) arrays, read a batch at a time
    `clipvectors`  per-clip statistics and the out-of-sample helpers the training-free methods share
    `sample_stats` the table of clip statistics computed from the samples (not the cache), and their WAV reading
    `clip_cache`   per-clip vectors of WAV samples (SoundNet's, the sample statistics) cached on disk, checked on load
    `modulation`   the rhythm of each band's level (envelope analysis), 0.8-40 Hz
    `fine_spectrum` mean and std of 128 fine mel bands (a tone a few per cent lower changes band)

Owns its parameters (`params.FeatureConfig`). May import the kernel only (`errors`, `io`); never `config`,
`data`, `models`, `scoring`, `methods`, `experiment` or `report`.
"""
