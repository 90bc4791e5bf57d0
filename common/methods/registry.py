"""Every method: its catalogue row (`common.methods.catalog`) joined with its function (a family module), here only.

The families are siblings: `common.methods.autoencoder` (autoencoder), `common.methods.statistics`,
`common.methods.embedding`, `common.methods.general_sound`; each function takes a `CellData` and returns an
`Adapted` model.
"""

from __future__ import annotations

from typing import Callable

from common.methods import autoencoder, embedding, general_sound, statistics
from common.methods.base import Adapted, CellData, Method
from common.errors import ProjectError
from common.methods.catalog import METHODS_CATALOG, MethodInfo


# Every method's function, named as its catalogue row (`common.methods.catalog.METHODS_CATALOG`), family by family.
FUNCTIONS = (*autoencoder.FUNCTIONS, *statistics.FUNCTIONS, *embedding.FUNCTIONS, *general_sound.FUNCTIONS)


def join_catalog(catalog: dict[str, MethodInfo], functions: tuple[Callable[[CellData], Adapted], ...]
                 ) -> dict[str, Method]:
    """Each catalogue row joined with the function of its name, in catalogue (results) order.

    Raises
    ------
    ProjectError
        A row without a function or a function without a row, naming them.
    """
    by_name = {f.__name__: f for f in functions}
    missing, extra = [n for n in catalog if n not in by_name], [n for n in by_name if n not in catalog]
    if missing or extra:
        raise ProjectError(f"method catalogue and functions disagree: rows without a function {missing}, "
                           f"functions without a row {extra} (common.methods.catalog, a family module's FUNCTIONS)")
    return {name: Method(info, by_name[name]) for name, info in catalog.items()}


METHODS: dict[str, Method] = join_catalog(METHODS_CATALOG, FUNCTIONS)  # results order, also the order cells run in
