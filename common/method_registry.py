"""Every method: its catalogue row (`common.method_catalog`) joined with its function (a family module), here only.

The families are siblings: `common.methods` (autoencoder), `common.statistical_methods`,
`common.embedding_methods`; each function takes a `CellData` and returns an `Adapted` model.
"""

from __future__ import annotations

from typing import Callable

from . import embedding_methods, methods, statistical_methods
from .adapt import Adapted, CellData, Method
from .errors import ProjectError
from .method_catalog import METHODS_CATALOG, MethodInfo


# Every method's function, named as its catalogue row (`common.method_catalog.METHODS_CATALOG`), family by family.
FUNCTIONS = (*methods.FUNCTIONS, *statistical_methods.FUNCTIONS, *embedding_methods.FUNCTIONS)


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
                           f"functions without a row {extra} (common.method_catalog, a family module's FUNCTIONS)")
    return {name: Method(info, by_name[name]) for name, info in catalog.items()}


METHODS: dict[str, Method] = join_catalog(METHODS_CATALOG, FUNCTIONS)  # results order, also the order cells run in
