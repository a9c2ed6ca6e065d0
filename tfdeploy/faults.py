"""One fault boundary per command: OS and framework errors become a :class:`TfdeployError`.

Every public library call (``compress``, ``export``, ``verify``, ...) is wrapped by
:func:`boundary`. Inside, code raises what it raises; at the boundary

* an ``OSError`` (permissions, read-only or full file system, a file where a directory should be)
  becomes a one-line error naming the path and the fix;
* a TensorFlow/Keras/TFMOT/LiteRT exception (one raised from those packages' code, or a
  ``tf.errors.OpError``) becomes a one-line error naming the step, with disk-full and
  permission faults that TensorFlow reports as ``ResourceExhaustedError``/``UnknownError``
  recognised from their text;
* a :class:`TfdeployError` passes unchanged, and anything else (a bug in tfdeploy) keeps its
  traceback. The CLI's ``--debug`` shows the original traceback (``__cause__``).

Example:
    >>> @boundary("export")
    ... def export(config): ...
"""

from __future__ import annotations

import errno
import functools
import sys
import traceback
from typing import Any, Callable, TypeVar

from tfdeploy.errors import TfdeployError

F = TypeVar("F", bound=Callable[..., Any])
FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization", "ai_edge_litert",
              "litert_quantizer", "h5py", "google/protobuf")
_FIXES = {
    errno.ENOSPC: ("No space left on device", "free space or write to another directory"),
    errno.EDQUOT: ("Disk quota exceeded", "free space or write to another directory"),
    errno.EROFS: ("Read-only file system", "write to a writable directory"),
    errno.EACCES: ("Permission denied", "give this user write access or write elsewhere"),
    errno.EPERM: ("Operation not permitted", "give this user write access or write elsewhere"),
    errno.ENOTDIR: ("A file is where a directory should be", "remove that file or choose another path"),
    errno.EISDIR: ("A directory is where a file should be", "remove that directory or choose another path"),
    errno.ENOENT: ("No such file or directory", "check the path"),
}
_TEXT_FAULTS = (("No space left on device", errno.ENOSPC), ("Read-only file system", errno.EROFS),
                ("Permission denied", errno.EACCES), ("Disk quota exceeded", errno.EDQUOT))


def os_fault(exc: OSError, step: str, path_hint: Any = None) -> TfdeployError:
    """The one-line error for an ``OSError`` met while running ``step`` (``path_hint``: where it was writing)."""
    what, fix = _FIXES.get(exc.errno or 0, (exc.strerror or type(exc).__name__, "check the path and retry"))
    path = exc.filename or getattr(exc, "filename2", None) or path_hint
    where = f" Received: path={str(path)!r}" if path else ""
    return TfdeployError(f"{what} while running {step}; {fix}. Nothing half-written was published.{where}")


def _raised_in_framework(exc: BaseException) -> str | None:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    filename = frames[-1].filename.replace("\\", "/")
    for package in FRAMEWORKS:
        if f"/site-packages/{package}/" in filename or f"/dist-packages/{package}/" in filename:
            return package.split("/")[-1]
    return None


def _is_tf_op_error(exc: BaseException) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(exc, tf.errors.OpError)


def framework_fault(exc: BaseException, step: str, package: str, path_hint: Any = None) -> TfdeployError:
    """The one-line error for an exception raised inside TensorFlow/Keras/TFMOT while running ``step``."""
    text = str(exc).strip()
    environment = environment_fault(exc)
    if environment is not None:
        return TfdeployError(f"{os_fault(environment, step, path_hint)} ({package}: {text.splitlines()[0][:200]})")
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    return TfdeployError(f"{step} failed inside {package}: {type(exc).__name__}: {first}. Run with --debug for the "
                         "traceback; if the model is valid, report it to tfdeploy.")


def is_environment_fault(exc: BaseException) -> bool:
    """A full, read-only or forbidden file system (as an ``OSError`` or in a TensorFlow error's text)."""
    return environment_fault(exc) is not None


def environment_fault(exc: BaseException) -> OSError | None:
    """``exc`` as the ``OSError`` of a full, read-only or forbidden file system (``None``: it is none of these);
    a framework error that only says so in its text becomes one with the errno it names."""
    if isinstance(exc, OSError):
        return exc
    return next((OSError(code, phrase) for phrase, code in _TEXT_FAULTS if phrase in str(exc)), None)


def convert_fault(exc: BaseException, step: str, path_hint: Any = None) -> BaseException:
    """What ``exc`` becomes at the boundary of ``step`` (itself if it is neither an OS nor a framework fault)."""
    if isinstance(exc, TfdeployError):
        return exc
    if isinstance(exc, OSError):
        return os_fault(exc, step, path_hint)
    package = "tensorflow" if _is_tf_op_error(exc) else _raised_in_framework(exc)
    if package is not None and isinstance(exc, Exception):
        return framework_fault(exc, step, package, path_hint)
    return exc


def boundary(step: str, where: str | None = None) -> Callable[[F], F]:
    """Decorates a public library call: see the module docstring.

    Args:
        step: The command's name, for messages.
        where: Attribute of the call's first argument (its config) naming where it writes, quoted when
            an OS error does not carry a path itself.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                hint = getattr(args[0], where, None) if where and args else None
                converted = convert_fault(exc, step, hint)
                if converted is exc:
                    raise
                raise converted from exc

        return wrapper  # type: ignore[return-value]

    return decorate
