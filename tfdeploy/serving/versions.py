"""Numbered version directories under a model's base path, as TF Serving sees them.

TF Serving serves every directory under the base path whose name is a number; this module lists
them and chooses the next one. It imports nothing heavy, so the serving configuration (and the
CLI that builds it) can check versions without loading the export machinery.

Example:
    >>> existing_versions("models/fashion")          # doctest: +SKIP
    [1, 2, 3]
    >>> resolve_version("models/fashion", None, overwrite=False)   # doctest: +SKIP
    4
"""

from __future__ import annotations

import os
from pathlib import Path

from tfdeploy.errors import TfdeployError


def existing_versions(base_dir: str | os.PathLike) -> list[int]:
    """Numeric version directories under ``base_dir``, ascending.

    Args:
        base_dir: The model's base path; a missing directory has no versions.

    Returns:
        The version numbers, ascending.

    Example:
        >>> existing_versions("models/none-yet")
        []
    """
    base = Path(base_dir)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version(base_dir: str | os.PathLike, version: int | None, overwrite: bool) -> int:
    """The version to write: ``version`` or highest + 1; refuses an existing one without ``overwrite``.

    Args:
        base_dir: The model's base path.
        version: The requested version; ``None`` for the highest existing + 1 (1 if none).
        overwrite: Allow an existing version.

    Returns:
        The version number to write.

    Raises:
        TfdeployError: For a negative version, or an existing one without ``overwrite``.

    Example:
        >>> resolve_version("models/none-yet", None, overwrite=False)
        1
    """
    versions = existing_versions(base_dir)
    if version is None:
        return (versions[-1] + 1) if versions else 1
    if version < 0:
        raise TfdeployError(f"A version is a non-negative integer. Received: version={version}")
    if version in versions and not overwrite:
        raise TfdeployError(
            f"Version {version} already exists and TF Serving may be serving it; it is never modified. Use "
            f"--version auto for the next one ({versions[-1] + 1}) or --overwrite. "
            f"Received: path={str(Path(base_dir) / str(version))!r}"
        )
    return version
