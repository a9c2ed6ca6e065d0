"""TF Serving warmup files: ``assets.extra/tf_serving_warmup_requests``.

The file is an uncompressed TFRecord of ``tensorflow.serving.PredictionLog`` protos. TF Serving
replays each record right after loading a version and before serving it, so the first real
request does not pay for lazy initialisation. The rules TF Serving enforces are enforced here at
write time: at most 1000 records, ``model_spec.signature_name`` must exist, the request's input
keys must equal the signature's inputs, and dtypes/shapes must fit. Any failing record fails the
whole version load in TF Serving.

Example:
    >>> report = write_warmup("models/fashion/3", batch_sizes=(1, 8, 32))   # doctest: +SKIP
    >>> report.records
    3
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tfdeploy import backend, faults
from tfdeploy.model.data import Dataset, ModelData, read_data
from tfdeploy.errors import TfdeployError
from tfdeploy.files import atomic_path, refuse_existing
from tfdeploy.io_spec import Arrays, ModelIO, as_feed, batch_size, concat, synthesize, take
from tfdeploy.report import Report
from tfdeploy.serving.signature import PREDICT_METHOD, SignatureInfo, read_signatures

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit (kMaxNumRecords in saved_model_warmup_util)
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


@dataclasses.dataclass
class WarmupReport(Report):
    """What :func:`write_warmup` wrote."""

    path: str
    records: int
    signature_name: str
    batch_sizes: list[int]
    source: str
    inputs: dict[str, list[int]]


def unseen_first(io: ModelIO, data: ModelData) -> tuple[Arrays, int]:
    """The validation rows, those holding an id or string absent from the training split first, and their count.

    Example:
        >>> rows, unseen = unseen_first(io, read_data("ranker.npz", io))     # doctest: +SKIP
        >>> unseen
        277
    """
    keys = [t.name for t in io.inputs if t.is_integer or t.is_string]
    n = batch_size(data.x_val)
    unseen = np.zeros(n, dtype=bool)
    for key in keys:
        unseen |= ~np.isin(data.x_val[key], data.x[key]).reshape(n, -1).all(axis=1)
    return take(data.x_val, np.argsort(~unseen, kind="stable")), int(unseen.sum())


def _from_data(splits: Sequence[Arrays], io: ModelIO, batch: int, offset: int) -> Arrays:
    """``batch`` real rows, alternating between the splits (validation rows with unseen values first, training rows).

    Validation data is where ids and strings unseen in training live (a cold user, a new country),
    and their lookups take other paths (an out-of-vocabulary bucket, untrained rows) than the
    frequent ids of the training split: a warmup of both warms both.
    """
    n = len(splits)
    rows = concat(take(splits[r % n], [(r // n) % batch_size(splits[r % n])]) for r in range(offset, offset + batch))
    return {t.name: as_feed(rows[t.name], t) for t in io.inputs}


def predict_log(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray]) -> Any:
    """Builds a ``PredictionLog`` holding a ``PredictRequest`` with every named input (strings as DT_STRING).

    Example:
        >>> log = predict_log("fashion", "serving_default", {"image": np.zeros((1, 28, 28, 1), "float32")})  # doctest: +SKIP
        >>> log.WhichOneof("log_type")
        'predict_log'
    """
    tf = backend.tf()
    predict_pb2, prediction_log_pb2 = backend.tf_proto("predict_pb2"), backend.tf_proto("prediction_log_pb2")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def request_of(log: Any) -> tuple[str, Any]:
    """The request inside a PredictionLog and its kind (``predict``, ``classify``, ...).

    Example:
        >>> request_of(log)[0]           # doctest: +SKIP
        'predict_log'
    """
    kind = log.WhichOneof("log_type")
    if kind is None:
        raise TfdeployError("A warmup record is an empty PredictionLog (no log_type set). Received: log_type=None")
    return kind, getattr(log, kind).request


def request_inputs(request: Any) -> Arrays:
    """A PredictRequest's inputs as named arrays (strings as ``bytes`` objects).

    Example:
        >>> request_inputs(log.predict_log.request)["image"].shape     # doctest: +SKIP
        (1, 28, 28, 1)
    """
    tf = backend.tf()
    return {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}


def check_warmup_logs(logs: Sequence[Any], signatures: dict[str, SignatureInfo]) -> None:
    """Applies TF Serving's warmup rules; raises TfdeployError naming the record and field at fault.

    Example:
        >>> check_warmup_logs([log], read_signatures("models/fashion/1"))    # doctest: +SKIP
    """
    if len(logs) > MAX_WARMUP_RECORDS:
        raise TfdeployError(
            f"TF Serving accepts at most {MAX_WARMUP_RECORDS} warmup records and fails the load otherwise. "
            f"Received: records={len(logs)}"
        )
    for index, log in enumerate(logs):
        kind, request = request_of(log)
        if kind not in ("predict_log", "classify_log", "regress_log", "multi_inference_log"):
            raise TfdeployError(f"Warmup record {index}: TF Serving cannot replay a {kind}. Received: log_type={kind!r}")
        name = request.model_spec.signature_name or "serving_default"
        if name not in signatures:
            raise TfdeployError(
                f"Warmup record {index}: model_spec.signature_name {name!r} is not in the SavedModel "
                f"(has {sorted(signatures)}). Received: signature_name={name!r}"
            )
        if kind != "predict_log":
            continue
        signature = signatures[name]
        keys = set(request.inputs)
        if keys != set(signature.inputs):
            raise TfdeployError(
                f"Warmup record {index}: request input keys {sorted(keys)} must equal the inputs of signature "
                f"{name!r}: {sorted(signature.inputs)}. Received: inputs={sorted(keys)}"
            )
        for key, array in request_inputs(request).items():
            dtype = "string" if array.dtype.kind in "OSU" else array.dtype.name
            if not signature.inputs[key].accepts(dtype, tuple(array.shape)):
                spec = signature.inputs[key]
                raise TfdeployError(
                    f"Warmup record {index}: input {key!r} is {dtype}{list(array.shape)} but signature {name!r} "
                    f"expects {spec.dtype}{list(spec.shape) if spec.shape else '[?]'}. "
                    f"Received: {key}={dtype}{list(array.shape)}"
                )


def write_warmup_records(version_dir: str | os.PathLike, logs: Sequence[Any]) -> Path:
    """Checks ``logs`` against the SavedModel and writes them as the version's warmup file (atomically).

    Example:
        >>> write_warmup_records("models/fashion/1", [log])      # doctest: +SKIP
        PosixPath('models/fashion/1/assets.extra/tf_serving_warmup_requests')
    """
    tf = backend.tf()
    version_dir = Path(version_dir)
    check_warmup_logs(logs, read_signatures(version_dir))
    target = version_dir / WARMUP_FILE
    with atomic_path(target) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:  # uncompressed: TF Serving reads no other
        for log in logs:
            writer.write(log.SerializeToString())
    return target


def _predict_signature(version_dir: Path, signature_name: str) -> SignatureInfo:
    """The Predict signature the warmup requests call; raises naming a missing or non-Predict one."""
    signatures = read_signatures(version_dir)
    if signature_name not in signatures:
        raise TfdeployError(
            f"Signature {signature_name!r} is not in the SavedModel (has {sorted(signatures)}). "
            f"Received: signature_name={signature_name!r}"
        )
    signature = signatures[signature_name]
    if signature.method_name != PREDICT_METHOD:
        raise TfdeployError(
            f"Signature {signature_name!r} is a {signature.method_name} signature; tfdeploy writes Predict warmup "
            f"records and synthesizing tf.Example inputs for it is not supported. Received: "
            f"signature_name={signature_name!r}"
        )
    return signature


@faults.boundary("warmup write")
def write_warmup(
    version_dir: str | os.PathLike,
    data: Dataset | str | os.PathLike | None = None,
    batch_sizes: Sequence[int] = (1,),
    signature_name: str = "serving_default",
    model_name: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> WarmupReport:
    """Writes ``assets.extra/tf_serving_warmup_requests`` for an exported version.

    One Predict request per batch size (batching servers warm each allowed batch size), built
    from real samples (``data``) or synthesized from the signature (its dtypes and shapes,
    random values from ``seed``).

    Args:
        version_dir: The numbered version directory with ``saved_model.pb``.
        data: Real inputs (a Dataset, ``.npz`` or image directory, resized to the signature);
            ``None`` to synthesize from the signature.
        batch_sizes: Batch size of each request.
        signature_name: Signature the requests call (must exist).
        model_name: ``model_spec.name`` (default: the base directory's name).
        seed: Seed for synthesized values.
        overwrite: Replace an existing warmup file.

    Returns:
        A :class:`WarmupReport`.

    Raises:
        TfdeployError: If a TF Serving warmup rule would be broken.

    Example:
        >>> write_warmup("models/fashion/1", batch_sizes=[1, 8]).records    # doctest: +SKIP
        2
    """
    version_dir = Path(version_dir)
    refuse_existing([version_dir / WARMUP_FILE], overwrite)
    signature = _predict_signature(version_dir, signature_name)
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise TfdeployError(f"Warmup batch sizes must be positive. Received: batch_sizes={list(batch_sizes)}")
    io = signature.io
    bound = None if data is None else read_data(data, io, hold_out=False)
    model_name = model_name or version_dir.resolve().parent.name
    rng = np.random.default_rng(seed)
    splits, source = [], f"synthesized from the signature (seed {seed})"
    if bound is not None:
        splits, source = [bound.x], f"data {bound.source}"
        if bound.x_val is not bound.x:
            validation, unseen = unseen_first(io, bound)
            splits.insert(0, validation)
            source += (f": validation and training rows alternately, the {unseen} validation row(s) with ids or "
                       "strings unseen in training first")
    logs, offset = [], 0
    for batch in batch_sizes:
        inputs = synthesize(io, batch, rng) if bound is None else _from_data(splits, io, batch, offset)
        offset += batch
        logs.append(predict_log(model_name, signature_name, inputs))
    path = write_warmup_records(version_dir, logs)
    return WarmupReport(
        path=str(path), records=len(logs), signature_name=signature_name, batch_sizes=list(batch_sizes),
        source=source,
        inputs={k: [d if d is not None else -1 for d in (v.shape or ())] for k, v in signature.inputs.items()},
    )


def read_warmup(path: str | os.PathLike) -> list[Any]:
    """Reads a warmup file the way TF Serving does: TFRecord framing with CRCs, then PredictionLog.

    Raises:
        TfdeployError: ``DATA_LOSS`` for broken framing/CRC or a record that does not parse.

    Example:
        >>> len(read_warmup("models/fashion/1/assets.extra/tf_serving_warmup_requests"))   # doctest: +SKIP
        3
    """
    tf = backend.tf()
    DecodeError, prediction_log_pb2 = backend.protobuf_decode_error(), backend.tf_proto("prediction_log_pb2")
    logs = []
    try:
        for index, raw in enumerate(tf.data.TFRecordDataset(str(path))):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(raw.numpy())
            except DecodeError as exc:
                raise TfdeployError(f"Warmup record {index} is not a PredictionLog ({exc}). Received: path={str(path)!r}")
            logs.append(log)
            if len(logs) > MAX_WARMUP_RECORDS:
                break
    except tf.errors.DataLossError as exc:
        raise TfdeployError(
            f"DATA_LOSS: the warmup file is truncated or corrupt after {len(logs)} good record(s) "
            f"({str(exc).splitlines()[0]}); TF Serving would fail to load this version. Re-write it with "
            f"`tfdeploy warmup write`. Received: path={str(path)!r}"
        ) from exc
    return logs


def has_warmup(version_dir: str | os.PathLike) -> bool:
    """Whether a version directory has a warmup file (``assets.extra/tf_serving_warmup_requests``).

    Example:
        >>> has_warmup("models/fashion/1")     # doctest: +SKIP
        True
    """
    return (Path(version_dir) / WARMUP_FILE).is_file()


def replay_warmup(signatures: Any, logs: list[Any], iterations: int = 1) -> int:
    """Runs every Predict record through the loaded signatures, as TF Serving does before serving a version.

    Args:
        signatures: The loaded SavedModel's ``signatures``.
        logs: ``PredictionLog`` records (:func:`read_warmup`); other kinds are skipped.
        iterations: Replays of each record (``num_request_iterations``).

    Returns:
        The number of calls made.

    Example:
        >>> replay_warmup(loaded.signatures, read_warmup("models/m/1/" + str(WARMUP_FILE)))   # doctest: +SKIP
        3
    """
    tf = backend.tf()
    calls = 0
    for _ in range(iterations):
        for log in logs:
            kind, request = request_of(log)
            if kind != "predict_log":
                continue
            function = signatures[request.model_spec.signature_name or "serving_default"]
            function(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
            calls += 1
    return calls


def replay_version_warmup(version_dir: str | os.PathLike, signatures: Any, iterations: int = 1) -> int:
    """Reads a version's warmup file and replays it through its loaded ``signatures``.

    Args:
        version_dir: The version directory holding the warmup file.
        signatures: The loaded SavedModel's ``signatures``.
        iterations: Replays of each record.

    Returns:
        The number of calls made.

    Raises:
        TfdeployError: If the version has no warmup file, or it is corrupt.

    Example:
        >>> replay_version_warmup("models/m/1", loaded.signatures)     # doctest: +SKIP
        3
    """
    if not has_warmup(version_dir):
        raise TfdeployError(f"The version has no {WARMUP_FILE} to replay; write it with `tfdeploy warmup write`. "
                            f"Received: path={str(version_dir)!r}")
    return replay_warmup(signatures, read_warmup(Path(version_dir) / WARMUP_FILE), iterations)
