"""annx: fast approximate nearest-neighbour search with a portable C++/SIMD core.

Quick start::

    import annx, numpy as np
    x = np.random.rand(10000, 64).astype("float32")
    index = annx.index_factory(64, "Flat", metric="l2")
    index.add(x)
    D, I = index.search(x[:5], k=10)
"""

from __future__ import annotations

import warnings

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "annx's compiled core (annx._core) could not be imported. Install annx with "
        "`pip install .` from the source tree (a C++20 compiler and CMake are needed), "
        f"not by adding the source folder to sys.path. Original error: {exc}"
    ) from exc

from . import datasets, distances
from ._errors import (
    AnnxError,
    CancelledError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    UnsupportedError,
)
from ._surface import (
    METRIC_INNER_PRODUCT,
    METRIC_L2,
    FaissIdiomError,
    from_bytes,
    load,
    read_info,
    register_kind,
)
from .binary import BinaryIndex
from .cluster import KMeans, kmeans
from .config import (
    available_isas,
    config,
    get_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
    show_config,
)
from .factory import index_factory
from .index import Index
from .multitenant import MultiTenantIndex
from .multivector import FDE, MultiVectorIndex, chamfer
from .transforms import LeanVec

__version__: str = _core.__version__

if _core.isa_env_warning():
    warnings.warn(_core.isa_env_warning(), RuntimeWarning, stacklevel=2)

__all__ = [
    "METRIC_INNER_PRODUCT",
    "METRIC_L2",
    "AnnxError",
    "BinaryIndex",
    "CancelledError",
    "FDE",
    "FaissIdiomError",
    "FormatError",
    "Index",
    "InvalidArgumentError",
    "KMeans",
    "LeanVec",
    "MultiTenantIndex",
    "MultiVectorIndex",
    "NotTrainedError",
    "UnsupportedError",
    "__version__",
    "available_isas",
    "chamfer",
    "config",
    "datasets",
    "distances",
    "from_bytes",
    "get_isa",
    "get_num_threads",
    "index_factory",
    "kmeans",
    "load",
    "read_info",
    "register_kind",
    "set_isa",
    "set_num_threads",
    "show_config",
]
