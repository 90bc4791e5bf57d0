"""Every method: its catalogue row (`common.methods.catalog`) joined with its function (a family module), here only.

The families are siblings: `common.methods.autoencoder` (autoencoder), `common.methods.statistics`,
`common.methods.embedding`, `common.methods.general_sound`, `common.methods.sample_stats`; each function takes a `CellData` and returns an
`Adapted` model. A fused method (a row with ``parts``) has no function of its own: it is made here from its parts'
(`common.methods.fused.fused_method`).
"""

from __future__ import annotations

from typing import Callable

from common.methods import autoencoder, embedding, general_sound, sample_stats, statistics
from common.methods.base import Adapted, CellData, Method
from common.methods.fused import fused_method
from common.errors import ProjectError
from common.methods.catalog import METHODS_CATALOG, MethodInfo


# Every method's function, named as its catalogue row (`common.methods.catalog.METHODS_CATALOG`), family by family.
FUNCTIONS = (*autoencoder.FUNCTIONS, *statistics.FUNCTIONS, *embedding.FUNCTIONS, *general_sound.FUNCTIONS,
             *sample_stats.FUNCTIONS)


def join_catalog(catalog: dict[str, MethodInfo], functions: tuple[Callable[[CellData], Adapted], ...]
                 ) -> dict[str, Method]:
    """Each catalogue row joined with the function of its name (a fused row: made of its parts'), in catalogue
    (results) order.

    Raises
    ------
    ProjectError
        A row without a function, a function without a row, a fused row with a function of its own, or one whose
        parts are not two or more rows with functions, naming them.
    """
    by_name = {f.__name__: f for f in functions}
    fused = {n: info.parts for n, info in catalog.items() if info.parts}
    missing = [n for n in catalog if n not in by_name and n not in fused]
    extra = [n for n in by_name if n not in catalog or n in fused]
    if missing or extra:
        raise ProjectError(f"method catalogue and functions disagree: rows without a function {missing}, "
                           f"functions without a row {extra} (common.methods.catalog, a family module's FUNCTIONS; "
                           "a fused row has none)")
    bad = {n: list(parts) for n, parts in fused.items() if len(parts) < 2 or not all(p in by_name for p in parts)}
    if bad:
        raise ProjectError(f"fused methods {bad}: each needs two or more parts, each a method with a function "
                           "(common.methods.catalog)")
    return {name: Method(info, fused_method(name, {p: by_name[p] for p in fused[name]}) if name in fused
                         else by_name[name]) for name, info in catalog.items()}


METHODS: dict[str, Method] = join_catalog(METHODS_CATALOG, FUNCTIONS)  # results order, also the order cells run in
