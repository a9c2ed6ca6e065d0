"""Writing files and publishing directories so that nothing half-written is ever visible.

* :func:`atomic_path` / :func:`write_atomic`: a file is written under a hidden temporary name
  beside its target, flushed to disk (``fsync``), given the mode the umask gives, renamed into
  place, and the directory entry is synced too: after a power loss the name holds the complete
  new file or the old one, never a torn one.
* :func:`staged_directory`: a directory (a TF Serving version) is assembled in a hidden staging
  directory beside the target; every file and directory is synced and gets the modes the umask
  gives (a server running as another user can read it), and it appears in one rename. Replacing
  an existing directory swaps the two in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so a
  reader polling the parent never sees the name missing.
* Staging directories left by processes that died mid-write are removed by the next publish into
  the same parent (:func:`remove_stale_staging`).

Example:
    >>> write_atomic(Path("out/report.json"), b"{}")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from tfdeploy.errors import TfdeployError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# Hidden names tfdeploy writes beside targets: .NAME.tmp-PID-TOKEN (staging, temp files), .NAME.old-PID-TOKEN.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+(?P<suffix>\.\w+)?$")


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible: setting it to read it races threads).

    Example:
        >>> current_umask()          # doctest: +SKIP
        18
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def published_mode(path: Path, umask: int | None = None) -> int:
    """What a normal ``open``/``mkdir`` would give: 0755 dirs, 0644 files (executables 0755) under umask 022.

    Example:
        >>> oct(published_mode(Path("run.sh"), umask=0o022))   # an executable file  # doctest: +SKIP
        '0o755'
    """
    mask = current_umask() if umask is None else umask
    executable = path.is_dir() or bool(path.stat().st_mode & 0o100)
    return (0o777 if executable else 0o666) & ~mask


def fsync_path(path: Path) -> None:
    """Flushes a file's data (or a directory's entries) to the disk.

    Example:
        >>> fsync_path(Path("models/m"))    # doctest: +SKIP
    """
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(target: Path, kind: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")


def ensure_writable(target: Path, overwrite: bool) -> None:
    """Refuses to replace ``target`` unless ``overwrite``; creates its parent directory.

    Example:
        >>> ensure_writable(Path("out/report.json"), overwrite=False)   # doctest: +SKIP
    """
    refuse_existing([target], overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)


def refuse_existing(targets: Iterable[Path], overwrite: bool) -> None:
    """Raises, before any work, if one of ``targets`` exists and ``overwrite`` is off.

    Example:
        >>> refuse_existing([Path("out/a.json"), Path("out/b.png")], overwrite=False)   # doctest: +SKIP
    """
    existing = [str(p) for p in targets if Path(p).exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise TfdeployError("The output already exists; pass --overwrite (overwrite=True) to replace it. "
                            f"Received: path={existing[0]!r}{more}")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yields a hidden temporary path beside ``target`` (same suffix); on success it becomes ``target``.

    The caller writes the file there (any writer: Keras, TFRecordWriter, ...). It is then synced,
    given the published mode and renamed over ``target``; the parent directory is synced. On any
    error the temporary file is removed and ``target`` is untouched.

    Example:
        >>> with atomic_path(Path("out/model.keras")) as tmp:    # doctest: +SKIP
        ...     model.save(tmp)
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        yield tmp
        fsync_path(tmp)
        os.chmod(tmp, published_mode(tmp))
        os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def write_atomic(target: Path, data: bytes | str) -> Path:
    """Writes ``data`` to ``target`` durably and atomically (see :func:`atomic_path`).

    Example:
        >>> write_atomic(Path("out/report.json"), "{}")     # doctest: +SKIP
        PosixPath('out/report.json')
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
    return target


@dataclasses.dataclass
class Publication:
    """What publishing a staged directory did (for reports)."""

    staging: Path
    target: Path
    replaced: bool = False
    atomic_replace: bool = True
    removed_stale: list[str] = dataclasses.field(default_factory=list)

    def notes(self) -> list[str]:
        notes = []
        if self.removed_stale:
            notes.append(f"removed {len(self.removed_stale)} staging director(y/ies) left by killed runs: "
                         + ", ".join(self.removed_stale))
        if self.replaced and not self.atomic_replace:
            notes.append("this file system cannot swap directories atomically (renameat2 RENAME_EXCHANGE): the "
                         "old version was renamed away before the new one was renamed in, a gap of microseconds")
        return notes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def remove_stale_staging(parent: Path) -> list[str]:
    """Removes tfdeploy's hidden temp/staging entries in ``parent`` whose process is gone.

    Returns:
        ``name (size)`` of each removed entry.

    Example:
        >>> remove_stale_staging(Path("models/fashion"))    # doctest: +SKIP
        ['.1.tmp-4242-0a1b2c3d (12.3 MB)']
    """
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or int(match.group("pid")) == os.getpid() or _pid_alive(int(match.group("pid"))):
            continue
        try:
            size = _size(entry)
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(f"{entry.name} ({size / 1e6:.1f} MB)")
        except OSError:  # another process cleaning it at the same time
            continue
    return removed


def finalize_tree(root: Path) -> None:
    """Gives every file and directory under ``root`` the published mode and syncs it to the disk.

    Example:
        >>> finalize_tree(Path("models/fashion/.2.tmp-4242-0a1b2c3d"))    # doctest: +SKIP
    """
    mask = current_umask()
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.chmod(path, published_mode(path, mask))
        fsync_path(path)
    os.chmod(root, published_mode(root, mask))
    fsync_path(root)


def exchange(first: Path, second: Path) -> None:
    """Swaps two paths in one step (``renameat2(RENAME_EXCHANGE)``).

    Raises:
        OSError: ``ENOSYS``/``EINVAL`` where the kernel or file system cannot do it.

    Example:
        >>> exchange(Path("models/m/.1.tmp-1-ab"), Path("models/m/1"))   # doctest: +SKIP
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(first), None, str(second))


def publish_directory(staging: Path, target: Path, overwrite: bool) -> Publication:
    """Moves a fully written ``staging`` directory to ``target``; swaps it in if ``target`` exists.

    Example:
        >>> publish_directory(Path("models/m/.2.tmp-1-ab"), Path("models/m/2"), overwrite=False).replaced  # doctest: +SKIP
        False
    """
    publication = Publication(staging=staging, target=target)
    if target.exists():
        if not overwrite:
            raise TfdeployError(f"The target appeared meanwhile; not replacing it. Received: path={str(target)!r}")
        publication.replaced = True
        try:
            exchange(staging, target)  # staging now holds the old directory
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                raise
            publication.atomic_replace = False
            retired = _temp_name(target, "old")
            os.rename(target, retired)
            os.rename(staging, target)
            staging = retired
        shutil.rmtree(staging, ignore_errors=True)
    else:
        os.rename(staging, target)
    fsync_path(target.parent)
    return publication


@contextlib.contextmanager
def staged_directory(target: Path, overwrite: bool) -> Iterator[Publication]:
    """Yields a :class:`Publication` whose ``staging`` is a hidden, empty directory beside ``target``.

    When the block succeeds, the staging directory is finalized (modes, fsync) and published as
    ``target``. The staging name starts with a dot and is not numeric, so TF Serving never loads
    it; stale staging directories of dead processes in the same parent are removed first. If the
    block raises, the staging directory is removed and ``target`` is untouched.

    Example:
        >>> with staged_directory(Path("models/m/2"), overwrite=False) as publication:   # doctest: +SKIP
        ...     (publication.staging / "saved_model.pb").write_bytes(data)
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_staging(target.parent)
    staging = _temp_name(target)
    staging.mkdir()
    publication = Publication(staging=staging, target=target, removed_stale=removed)
    try:
        yield publication
        finalize_tree(staging)
        published = publish_directory(staging, target, overwrite)
        publication.replaced, publication.atomic_replace = published.replaced, published.atomic_replace
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
