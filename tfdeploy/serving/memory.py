"""Memory accounting of served versions: bytes per table, per version, and what a hot update needs.

TF Serving reads a version's ``variables/`` into memory when it loads it, and during a hot update
the old and the new version are resident together until the old one is unloaded. So a container
serving a ranker with 1.3 GB of embeddings needs room for 2.6 GB of variables at every update,
plus the server's own baseline; with ``--num_load_threads`` above 1, several models can be in
that state at once. :func:`version_memory` reads the bytes of one version (no TensorFlow needed);
:func:`largest_variables` names a model's biggest tables; :func:`swap_need` gives the memory a container must have.

Example:
    >>> need = swap_need({"ranker": 1_300_000_000}, load_threads=2)    # doctest: +SKIP
    >>> round(need.total_bytes / 2**30, 1)                             # doctest: +SKIP
    3.0
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from tfdeploy.errors import TfdeployError


# Resident memory of the TensorFlow runtime with nothing loaded, measured here as the rehearsal's steady RSS minus the
# version's variables (docs/benchmarks.md); the model server binary itself cannot run here, so this is an estimate.
RUNTIME_BASELINE_BYTES = 600 * 2**20
TABLES_LISTED = 5
ONEDNN_POOL_WARNING_BYTES = 512 * 2**20  # served versions from this size are warned about oneDNN's pooling allocator  # the largest variables named in a report
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTE]i?|[kmgte]i?|)[bB]?\s*$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "e": 10**18,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "ei": 2**60}


def parse_memory(text: str) -> int:
    """Bytes of a Kubernetes/Docker memory quantity: ``4Gi``, ``4096Mi``, ``4G``, ``4g``, ``2500000000``.

    Example:
        >>> parse_memory("4Gi"), parse_memory("1.5G"), parse_memory("512Mi")
        (4294967296, 1500000000, 536870912)
    """
    match = _QUANTITY.match(str(text))
    if not match:
        raise TfdeployError("A memory size is a number with an optional unit: Ki, Mi, Gi, Ti (powers of 2) or K, M, "
                            f"G, T (powers of 10), e.g. 8Gi or 8000M. Received: memory={text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def size_text(n: float) -> str:
    """``n`` bytes in MiB, or GiB from 1 GiB, for messages.

    Example:
        >>> size_text(3 * 2**29), size_text(2.5 * 2**20)
        ('1.50 GiB', '2.5 MiB')
    """
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


@dataclasses.dataclass
class VersionMemory:
    """The bytes one version brings into memory.

    Attributes:
        version_dir: The numbered version directory.
        variables_bytes: Bytes of ``variables/variables.data-*``: what the server reads and keeps.
        graph_bytes: Bytes of ``saved_model.pb`` (the graph, also held while loaded).
        tables: The largest variables, name -> bytes (:func:`largest_variables`, where the model is at hand).
    """

    version_dir: str
    variables_bytes: int
    graph_bytes: int
    tables: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def resident_bytes(self) -> int:
        """Bytes the version holds while loaded (its variables and its graph)."""
        return self.variables_bytes + self.graph_bytes


def version_memory(version_dir: str | os.PathLike) -> VersionMemory:
    """The variable and graph bytes of a version, from its files (0 for files it does not have).

    Example:
        >>> version_memory("models/ranker/1").variables_bytes      # doctest: +SKIP
        1342177280
    """
    path = Path(version_dir)
    data = sorted((path / "variables").glob("variables.data-*"))
    graph = path / "saved_model.pb"
    return VersionMemory(str(path), sum(p.stat().st_size for p in data), graph.stat().st_size if graph.is_file() else 0)


def largest_variables(variables: Sequence[Any], listed: int = TABLES_LISTED) -> dict[str, int]:
    """The ``listed`` largest of a model's variables (``model.weights``), by path, in bytes.

    Example:
        >>> largest_variables(model.weights, 1)                     # doctest: +SKIP
        {'user_id_embedding/embeddings': 1024000000}
    """
    import numpy as np

    sizes: dict[str, int] = {}
    for variable in variables:
        dtype = getattr(variable, "dtype", "float32")
        itemsize = np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).itemsize
        name = str(getattr(variable, "path", None) or variable.name)
        sizes[name] = sizes.get(name, 0) + int(np.prod(tuple(variable.shape), dtype=np.int64)) * itemsize
    return dict(sorted(sizes.items(), key=lambda item: -item[1])[:listed])


@dataclasses.dataclass
class SwapNeed:
    """The memory a server needs to serve its models and hot-update them.

    Attributes:
        serving_bytes: Every model's latest version resident (steady serving), plus the runtime baseline.
        swap_bytes: What a hot update adds: a second version of the ``load_threads`` largest models.
        total_bytes: ``serving_bytes + swap_bytes``.
        models: Model name -> resident bytes of its version.
    """

    serving_bytes: int
    swap_bytes: int
    total_bytes: int
    models: dict[str, int]


def swap_need(models: Mapping[str, int], load_threads: int = 1,
              baseline_bytes: int = RUNTIME_BASELINE_BYTES) -> SwapNeed:
    """Memory for steady serving plus a hot update of up to ``load_threads`` models at once.

    Example:
        >>> need = swap_need({"a": 100, "b": 300}, load_threads=1, baseline_bytes=50)
        >>> need.serving_bytes, need.swap_bytes, need.total_bytes
        (450, 300, 750)
    """
    serving = baseline_bytes + sum(models.values())
    swap = sum(sorted(models.values(), reverse=True)[:max(load_threads, 1)])
    return SwapNeed(serving, swap, serving + swap, dict(models))


def kubernetes_quantity(n: int) -> str:
    """``n`` bytes rounded up to whole GiB (``Gi``), at least 1.

    Example:
        >>> kubernetes_quantity(3 * 2**30 + 1)
        '4Gi'
    """
    return f"{max(1, -(-n // 2**30))}Gi"
