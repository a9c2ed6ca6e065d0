"""LiteRT, the runtime of ``.tflite`` files (``ai_edge_litert``).

Example:
    >>> interpreter, runtime = tflite_interpreter(blob, threads=1)       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from tfdeploy.backend.imports import version_of


def tflite_interpreter(source: Any, threads: int | None = None) -> tuple[Any, str]:
    """A TFLite interpreter for a file or flatbuffer bytes, and the name of the runtime.

    The runtime is LiteRT (``ai_edge_litert``, an install requirement), never TF's deprecated
    interpreter.

    Example:
        >>> interpreter, runtime = tflite_interpreter("model.tflite")   # doctest: +SKIP
        >>> runtime
        'LiteRT 2.3.0'
    """

    from tfdeploy.errors import TfdeployError

    blob = bytes(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    if blob[4:8] != b"TFL3":
        raise TfdeployError(f"Not a TFLite flatbuffer (file identifier {blob[4:8]!r}, expected b'TFL3'); give a "
                            ".tflite file written by the TFLite converter. Received: path="
                            f"{'<bytes>' if isinstance(source, (bytes, bytearray)) else repr(str(source))}")
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=blob, num_threads=threads), f"LiteRT {version_of('ai-edge-litert')}"
