"""Read a SavedModel's signatures from ``saved_model.pb``, as TF Serving sees them.

TF Serving matches warmup requests and client requests against the ``SignatureDef`` in the
``serve`` MetaGraph: the signature name, the input keys, dtypes and shapes. This module reads
exactly that, without loading variables.

Example:
    >>> sig = read_signatures("models/fashion/1")["serving_default"]    # doctest: +SKIP
    >>> sig.inputs
    {'image': TensorSpecInfo(dtype='float32', shape=(None, 32, 32, 3))}
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import ModelIO, TensorInfo
from tfdeploy.model.loading import SAVED_MODEL_PB

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


@dataclasses.dataclass(frozen=True)
class TensorSpecInfo:
    """dtype name and shape (``None`` for unknown dimensions) of a signature tensor."""

    dtype: str
    shape: tuple[int | None, ...] | None

    def accepts(self, dtype: str, shape: tuple[int, ...]) -> bool:
        """Whether a concrete tensor of ``dtype``/``shape`` fits this spec."""
        if dtype != self.dtype:
            return False
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(e is None or e == a for e, a in zip(self.shape, shape))


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    """One SignatureDef: method name, inputs and outputs by key."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpecInfo]
    outputs: dict[str, TensorSpecInfo]

    @property
    def io(self) -> ModelIO:
        """The signature's named inputs and outputs (per-sample shapes), as data and warmup use them.

        Raises:
            TfdeployError: For an input of unknown rank (nothing can be synthesized or checked).
        """
        def info(key: str, spec: TensorSpecInfo) -> TensorInfo:
            if spec.shape is None:
                raise TfdeployError(f"Input {key!r} of signature {self.name!r} has unknown rank; give real data "
                                    f"(--warmup-data / --data). Received: signature={self.name!r}")
            return TensorInfo(key, spec.dtype, tuple(spec.shape[1:]))

        return ModelIO(inputs=tuple(info(k, v) for k, v in sorted(self.inputs.items())),
                       outputs=tuple(TensorInfo(k, v.dtype, tuple((v.shape or (None,))[1:]))
                                     for k, v in sorted(self.outputs.items())))


def _spec(tensor_info: object) -> TensorSpecInfo:
    from tfdeploy import backend

    dtype = backend.tf_proto("types_pb2").DataType.Name(tensor_info.dtype)  # type: ignore[attr-defined]
    dtype = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16"}.get(dtype, dtype[3:].lower())
    shape_proto = tensor_info.tensor_shape  # type: ignore[attr-defined]
    shape = None if shape_proto.unknown_rank else tuple(None if d.size < 0 else int(d.size) for d in shape_proto.dim)
    return TensorSpecInfo(dtype=dtype, shape=shape)


def read_signatures(version_dir: str | os.PathLike, tag: str = "serve") -> dict[str, SignatureInfo]:
    """Returns the SignatureDefs of the MetaGraph tagged ``tag`` in ``version_dir/saved_model.pb``.

    Raises:
        TfdeployError: If the file is missing, unparsable, or has no MetaGraph with ``tag``.

    Example:
        >>> sorted(read_signatures("models/fashion/1"))      # doctest: +SKIP
        ['serving_default']
    """
    from tfdeploy import backend

    DecodeError, saved_model_pb2 = backend.protobuf_decode_error(), backend.tf_proto("saved_model_pb2")
    path = Path(version_dir) / SAVED_MODEL_PB
    if not path.is_file():
        raise TfdeployError(f"No {SAVED_MODEL_PB} in the version directory. Received: path={str(version_dir)!r}")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise TfdeployError(f"saved_model.pb is corrupt ({exc}). Received: path={str(path)!r}") from exc
    for meta_graph in saved_model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return {
                name: SignatureInfo(
                    name=name, method_name=sig.method_name,
                    inputs={k: _spec(v) for k, v in sig.inputs.items()},
                    outputs={k: _spec(v) for k, v in sig.outputs.items()},
                )
                for name, sig in meta_graph.signature_def.items() if not name.startswith("__")
            }
    raise TfdeployError(f"saved_model.pb has no MetaGraph tagged {tag!r}. Received: path={str(path)!r}")
