"""The grid: plan the cells, pretrain the models they need, run them (locally or on Dask), store the rows.

    `plan`         the cells and pretraining jobs of a run, their hashes, reuse of stored rows
    `pretrain`     one pretrained model per source set and pretraining kind (make_pretrain)
    `pretrain_classifier` the embedding family's classifiers of the source machines (dense and spectrogram), with
                  their source banks
    `grid`         plan -> run each cell -> store (transfer_pretrain)
    `executor`     where jobs and cells run: serially here, or on a local or remote Dask cluster
    `store`        every finished row of a result folder, kept for good (``.store/``)
    `advise`       rank the known machines as sources for a new machine's clips

May import everything below it (`data`, `features`, `models`, `scoring`, `methods`) and the kernel; never
`report`.
"""
