"""What a serving configuration's server needs in memory, and the warnings ``serving-config`` gives about it.

Example:
    >>> need = serving_need(ServingConfig([ServedModel("ranker", "models/ranker")], "serving"))   # doctest: +SKIP
    >>> memory_warnings(ServingConfig([...], "serving", memory_limit="2Gi"), need)[0][:40]   # doctest: +SKIP
    'memory limit 2Gi (2.00 GiB) cannot hold a'
"""

from __future__ import annotations

from pathlib import Path

from tfdeploy.serving.config.options import ServingConfig, served_versions
from tfdeploy.serving.memory import (ONEDNN_POOL_WARNING_BYTES, RUNTIME_BASELINE_BYTES, SwapNeed, kubernetes_quantity,
                                     parse_memory, size_text, swap_need, version_memory)
from tfdeploy.serving.versions import existing_versions


def serving_need(config: ServingConfig) -> SwapNeed:
    """What the server of ``config`` needs: its models' served versions, plus a hot update of the largest ones.

    ``--num_load_threads`` models can load a new version at once, each beside the version it
    replaces; the sizes are read from the newest version's files (models whose base dir is not on
    this machine count nothing).

    Example:
        >>> serving_need(ServingConfig([ServedModel("m", "models/m")], "serving")).total_bytes   # doctest: +SKIP
        2906652672
    """
    resident, newest = {}, {}
    for model in config.models:
        found = existing_versions(model.base_dir)
        if not found:  # a base dir not on this machine (gs://...): its size is not known here
            continue
        sizes = {v: version_memory(Path(model.base_dir) / str(v)).resident_bytes
                 for v in served_versions(model, found)}
        resident[model.name] = sum(sizes.values())
        newest[model.name] = version_memory(Path(model.base_dir) / str(found[-1])).resident_bytes
    need = swap_need(newest, config.num_load_threads)
    serving = RUNTIME_BASELINE_BYTES + sum(resident.values())
    return SwapNeed(serving, need.swap_bytes, serving + need.swap_bytes, resident)


def memory_warnings(config: ServingConfig, need: SwapNeed) -> list[str]:
    """Warnings: ``config.memory_limit`` cannot hold serving plus a hot update; a large version served with oneDNN on.

    Example:
        >>> memory_warnings(config, SwapNeed(3 * 2**30, 2**30, 4 * 2**30, {"m": 2**30}))   # doctest: +SKIP
        ['memory limit 2Gi cannot hold a hot update: ...']
    """
    warnings = []
    large = {name: n for name, n in need.models.items() if n >= ONEDNN_POOL_WARNING_BYTES}
    if config.onednn and large:
        warnings.append(
            f"model(s) {', '.join(f'{name} ({size_text(n)})' for name, n in large.items())} are served with oneDNN on: "
            "its pooling allocator keeps the memory each unloaded version freed, so resident memory grows by up to a "
            "version at an update and stays there (measured on a 1.2 GB ranker: +65-104 % after three swaps, 1-2 % "
            "with oneDNN off; docs/benchmarks.md). Pass --no-onednn unless your model needs oneDNN's speed.")
    if config.memory_limit is None or parse_memory(config.memory_limit) >= need.total_bytes:
        return warnings
    limit = parse_memory(config.memory_limit)
    models = ", ".join(f"{name} {size_text(n)}" for name, n in need.models.items())
    return [f"memory limit {config.memory_limit} ({size_text(limit)}) cannot hold a hot update: serving takes "
            f"{size_text(need.serving_bytes)} (versions: {models}; runtime about {size_text(RUNTIME_BASELINE_BYTES)}), "
            f"and while a new version loads beside the old one ({config.num_load_threads} load thread(s)) another "
            f"{size_text(need.swap_bytes)}: {size_text(need.total_bytes)} in all. The container would be killed for "
            f"memory at an update. Raise the limit to at least {kubernetes_quantity(need.total_bytes)}, or shrink the "
            f"tables (the embedding-int8 recipe stores them in a quarter of the bytes). "
            f"Received: memory_limit={config.memory_limit}", *warnings]
