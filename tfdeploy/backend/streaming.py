"""Loading a large Keras 3 ``.keras`` file without holding its weights three or four times.

Keras 3 reads ``model.weights.h5`` whole into memory when it thinks memory allows (a ``bytes``
object and a ``BytesIO`` copy of it), turns each weight into a NumPy array, then into a tensor,
and assigns it to a variable that already holds its random initial value (whose intermediate
tensors oneDNN's allocator keeps pooled). For a ranker with 1.28 GB of embeddings that peaked at
5.7 GB. Inside :func:`streamed_weights`, variables over :data:`CHUNK_BYTES` start as zeros, the
weights file is read from disk (Keras's own path for low memory: extracted beside the model
into a temporary directory, or read from the archive in place where that is read-only), and
each large weight is copied into its variable a block of rows at a time.

Example:
    >>> with streamed_weights("ranker.keras"):                       # doctest: +SKIP
    ...     model = keras.models.load_model("ranker.keras")
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from typing import Any, Iterator

from tfdeploy.backend.imports import keras3, tf

CHUNK_BYTES = 64 * 2**20  # rows copied per step into a large variable
STREAM_FROM_BYTES = 256 * 2**20  # weight files from this size are read in place
WEIGHTS_MEMBER = "model.weights.h5"


def _weights_size(path: str | os.PathLike) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            return info.file_size if info.compress_type == zipfile.ZIP_STORED else 0
    except (OSError, KeyError, zipfile.BadZipFile):
        return 0


@contextlib.contextmanager
def streamed_weights(path: str | os.PathLike) -> Iterator[bool]:
    """While Keras 3 loads ``path``, its large weights are read in place and copied in blocks of rows.

    Yields whether streaming applies (an uncompressed weights member of at least
    :data:`STREAM_FROM_BYTES`); smaller files load as Keras loads them. With oneDNN's allocator
    (TensorFlow's default on x86), freed tensors stay pooled in the process, so its resident
    memory stays above the variables after the load.
    """
    if _weights_size(path) < STREAM_FROM_BYTES:
        yield False
        return
    import numpy as np

    keras3()
    from keras.src.backend.common.variables import Variable
    from keras.src.backend.tensorflow.core import Variable as TensorflowVariable
    from keras.src.saving import saving_lib

    def zeros_first(variable: Any, initializer: Any) -> Any:
        if _nbytes(variable.shape, variable.dtype) <= CHUNK_BYTES:
            return original_init(variable, initializer)
        # Its value comes from the file: a random initial value would only cost time and memory. Zeros filled
        # inside a graph function go into the variable's buffer without a copy (an eager tensor would be copied).
        tf_ = tf()
        from tensorflow.python.ops.resource_variable_ops import UninitializedVariable

        value = UninitializedVariable(shape=variable.shape, dtype=variable.dtype, name=variable.name,
                                      trainable=variable.trainable)
        tf_.function(lambda: value.assign(tf_.zeros(variable.shape, dtype=variable.dtype)), autograph=False)()
        return variable._initialize(value)

    def from_disk(model: Any) -> bool:
        return False  # Keras then extracts model.weights.h5 beside the file (or, read-only there, reads the zip)

    def dataset(entry: Any, key: str) -> Any:
        value = saving_lib.safe_get_h5_dataset(entry._h5_entry_group, key)
        if getattr(value, "nbytes", 0) > CHUNK_BYTES and "dtype" not in getattr(value, "attrs", {}):
            return value  # an h5py Dataset: assign() below copies it in blocks
        return original_get(entry, key)

    def assign(variable: Any, value: Any) -> Any:
        if not _is_large_dataset(value) or tuple(value.shape) != tuple(variable.shape):
            return original_assign(variable, value)
        rows = max(1, CHUNK_BYTES // max(1, value.nbytes // value.shape[0]))
        handle, rest = variable.value.handle, list(value.shape[1:])
        for start in range(0, value.shape[0], rows):
            stop = min(start + rows, value.shape[0])
            # The raw op writes the rows in place; ``tensor[a:b].assign`` would first read (copy) the whole variable
            tf().raw_ops.ResourceStridedSliceAssign(
                ref=handle, begin=[start] + [0] * len(rest), end=[stop] + rest, strides=[1] * (1 + len(rest)),
                value=np.asarray(value[start:stop], dtype=variable.dtype))
        return variable

    original_get, original_assign = saving_lib.H5IOStore.__getitem__, Variable.assign
    original_check, original_init = saving_lib.is_memory_sufficient, TensorflowVariable._initialize_with_initializer
    saving_lib.is_memory_sufficient, saving_lib.H5IOStore.__getitem__ = from_disk, dataset
    Variable.assign, TensorflowVariable._initialize_with_initializer = assign, zeros_first
    try:
        yield True
    finally:
        saving_lib.is_memory_sufficient, saving_lib.H5IOStore.__getitem__ = original_check, original_get
        Variable.assign, TensorflowVariable._initialize_with_initializer = original_assign, original_init


def _nbytes(shape: Any, dtype: Any) -> int:
    import numpy as np

    return int(np.prod(tuple(shape), dtype=np.int64)) * np.dtype(str(dtype)).itemsize


def _is_large_dataset(value: Any) -> bool:
    return type(value).__module__.startswith("h5py") and hasattr(value, "shape") and len(value.shape) >= 1
