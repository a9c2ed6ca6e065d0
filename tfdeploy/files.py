"""Atomic writes: nothing half-written is ever visible under its final name.

Files are written to a hidden temporary name in the same directory and renamed; directories are
assembled in a hidden staging directory beside the target and renamed into place.

Example:
    >>> write_atomic(Path("out/report.json"), b"{}")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tfdeploy.errors import TfdeployError


def ensure_writable(target: Path, overwrite: bool) -> None:
    """Refuses to replace ``target`` unless ``overwrite``; creates its parent directory."""
    if target.exists() and not overwrite:
        raise TfdeployError(
            f"The output already exists; pass --overwrite (overwrite=True) to replace it. Received: path={str(target)!r}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)


def write_atomic(target: Path, data: bytes | str) -> Path:
    """Writes ``data`` to ``target`` through a temporary file and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


@contextlib.contextmanager
def staged_directory(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yields a hidden, empty directory beside ``target``; on success it becomes ``target``.

    The staging name starts with a dot and is not numeric, so TF Serving never loads it. If the
    block raises, the staging directory is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        publish_directory(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_directory(staging: Path, target: Path, overwrite: bool) -> None:
    """Moves a fully written ``staging`` directory to ``target`` with renames (atomic on one filesystem)."""
    if target.exists():
        if not overwrite:
            raise TfdeployError(f"The target appeared meanwhile; not replacing it. Received: path={str(target)!r}")
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, retired)
        os.rename(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, target)
