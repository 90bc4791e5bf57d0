"""Results -> numbers -> words and figures: statistics, plots, the report, official scores, published rows.

    `stats`        statistics of the comparison, numbers only
    `plots`        figures (each function returns a matplotlib Figure)
    `writer`       the cross-version report in words, tables and figures
    `official`     the report's DCASE official-score tables beside the published ones
    `published`    published reference rows with their split, source and commit
    `hindsight`    v5 per target against the best and worst fixed version and k random sources
    `worlds`       which family conclusions held in every synthetic world (``worlds_evidence.csv``), this run beside them

Keras-free: from the model side it imports only `methods.catalog`; never `models`, `experiment`, or the
other `methods` modules.
"""
