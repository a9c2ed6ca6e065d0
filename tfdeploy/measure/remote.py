"""A running TF Serving as a ``bench`` target: its gRPC PredictionService or its REST API.

Targets are URLs (the port defaults to TF Serving's: 8500 for gRPC, 8501 for REST):

* ``grpc://HOST:PORT/MODEL``, ``grpc://HOST:PORT/MODEL/VERSION``, ``grpc://HOST:PORT/MODEL@LABEL``:
  ``tensorflow.serving.PredictionService`` through ``tensorflow-serving-api``'s stubs, one channel
  shared by every client thread;
* ``http://HOST:PORT/v1/models/MODEL[/versions/N|/labels/LABEL]``: the REST API (``GET .../metadata``,
  ``POST ...:predict`` in the columnar ``{"inputs": ...}`` format, strings as ``{"b64": ...}``), one
  keep-alive connection per client thread (the standard library's ``http.client``).

:func:`remote_predictor` reads the served signature through GetModelMetadata (``signature_def``)
and returns a :class:`~tfdeploy.measure.predictors.Predictor` on it, so the server's latency is
measured exactly as a local artifact's. Connecting raises a :class:`TfdeployError` naming the target
and the fix (server down, port not published, unknown model/version/label, not TF Serving); a
request that fails later raises :class:`RequestFailed`, which the load counts as an error.

Example:
    >>> predictor = remote_predictor("grpc://localhost:8500/fashion")     # doctest: +SKIP
    >>> predictor.io.input_names
    ['image']
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import threading
import urllib.parse
from typing import Any, Mapping

import numpy as np

from tfdeploy import backend
from tfdeploy.backend.imports import grpc, protobuf_json_format
from tfdeploy.errors import TfdeployError
from tfdeploy.io_spec import Arrays, ModelIO, TensorInfo
from tfdeploy.measure.predictors import Predictor

GRPC_PORT, REST_PORT = 8500, 8501  # TF Serving's defaults (--port, --rest_api_port)
CONNECT_TIMEOUT_S = 10.0  # metadata and status calls
REQUEST_TIMEOUT_S = 30.0  # one Predict
FORMS = ("grpc://HOST:PORT/MODEL[/VERSION|@LABEL]", "http://HOST:PORT/v1/models/MODEL[/versions/N|/labels/LABEL]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GRPC_PATH = re.compile(r"^/(?P<model>[^/@]+)(?:/(?P<version>\d+)|@(?P<label>[^/@]+))?/?$")
_REST_PATH = re.compile(r"^/v1/models/(?P<model>[^/:@]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?/?$")
_DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_STRING": "string"}
_HTTP_CODES = {404: "NOT_FOUND", 400: "INVALID_ARGUMENT", 405: "UNIMPLEMENTED", 501: "UNIMPLEMENTED"}  # as gRPC codes


class RequestFailed(Exception):
    """One request the server answered with an error (or did not answer): data for the load, not a crash."""


@dataclasses.dataclass(frozen=True)
class RemoteTarget:
    """A model served by TF Serving, parsed from its URL.

    Attributes:
        url: The URL as given.
        scheme: ``"grpc"`` or ``"http"``.
        host: Host name or address.
        port: The gRPC or REST port.
        model: The model's name (``models.config`` ``name``, or ``--model_name``).
        version: A pinned version, else ``None``.
        label: A version label (``version_labels`` in ``models.config``), else ``None``.
    """

    url: str
    scheme: str
    host: str
    port: int
    model: str
    version: int | None = None
    label: str | None = None

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 address in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def rest_path(self) -> str:
        """``/v1/models/MODEL[/versions/N|/labels/L]``: the REST resource of the model (or of its version)."""
        suffix = (f"/versions/{self.version}" if self.version is not None else
                  f"/labels/{self.label}" if self.label is not None else "")
        return f"/v1/models/{self.model}{suffix}"

    def describe(self) -> str:
        """``model 'fashion' version 2`` / ``model 'fashion' label 'stable'`` / ``model 'fashion'``."""
        which = (f" version {self.version}" if self.version is not None else
                 f" label {self.label!r}" if self.label is not None else "")
        return f"model {self.model!r}{which}"


def is_remote(artifact: Any) -> bool:
    """Whether a bench artifact is a URL (``grpc://``, ``http://``, ...) rather than a local path.

    Example:
        >>> is_remote("grpc://localhost:8500/fashion"), is_remote("models/fashion/1")
        (True, False)
    """
    return isinstance(artifact, str) and bool(_SCHEME.match(artifact))


def parse_target(url: str) -> RemoteTarget:
    """Parses a target URL (see the module docstring for the forms).

    Raises:
        TfdeployError: For another scheme or a path that is neither form, saying which form is expected.

    Example:
        >>> parse_target("grpc://localhost:8500/fashion@stable").label
        'stable'
        >>> parse_target("http://localhost/v1/models/fashion/versions/2").port
        8501
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    pattern, default_port = {"grpc": (_GRPC_PATH, GRPC_PORT), "http": (_REST_PATH, REST_PORT)}.get(scheme, (None, 0))
    expected = f"expected {FORMS[0]} (gRPC) or {FORMS[1]} (REST)"
    if pattern is None:
        raise TfdeployError(f"A remote bench target must be grpc:// or http://; {expected}. Received: target={url!r}")
    try:
        port = parts.port or default_port
    except ValueError:
        port = 0
    match = pattern.match(parts.path)
    if not parts.hostname or not port or not match or parts.query or parts.fragment:
        form = FORMS[0] if scheme == "grpc" else f"{FORMS[1]} (the model's resource, not its :predict URL)"
        raise TfdeployError(f"Malformed {scheme}:// target: expected {form}. Received: target={url!r}")
    version = match.group("version")
    return RemoteTarget(url=url, scheme=scheme, host=parts.hostname, port=port, model=match.group("model"),
                        version=int(version) if version is not None else None, label=match.group("label"))


def signature_io(signature_defs: Mapping[str, Any], signature_name: str, target: RemoteTarget) -> ModelIO:
    """The named inputs and outputs of one signature in a ``SignatureDefMap`` as JSON (what REST returns).

    Args:
        signature_defs: Signature name -> ``SignatureDef`` as a dict (proto field names).
        signature_name: The signature to call.
        target: The target (for messages).

    Raises:
        TfdeployError: If the model has no such signature, or an input of unknown rank.

    Example:
        >>> defs = {"serving_default": {"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {
        ...     "dim": [{"size": "-1"}, {"size": "3"}]}}}, "outputs": {}}}
        >>> signature_io(defs, "serving_default", parse_target("grpc://h:1/m")).inputs
        (TensorInfo(name='x', dtype='float32', shape=(3,), activation=None),)
    """
    if signature_name not in signature_defs:
        served = sorted(k for k in signature_defs if not k.startswith("__"))
        raise TfdeployError(f"{target.describe()} at {target.address} has no signature {signature_name!r} (it serves "
                            f"{served}); pass --signature NAME. Received: target={target.url!r}, "
                            f"signature_name={signature_name!r}")
    signature = signature_defs[signature_name]

    def info(key: str, tensor: Mapping[str, Any], is_input: bool) -> TensorInfo:
        dtype = tensor.get("dtype", "DT_INVALID")
        dtype = _DTYPES.get(dtype, dtype[3:].lower()) if isinstance(dtype, str) else str(dtype)
        shape = tensor.get("tensor_shape", {})
        if shape.get("unknown_rank") and is_input:
            raise TfdeployError(f"Input {key!r} of signature {signature_name!r} has unknown rank: tfdeploy cannot "
                                f"build requests for it. Received: target={target.url!r}")
        dims = [int(d.get("size", 0)) for d in shape.get("dim", [])]
        return TensorInfo(key, dtype, tuple(None if d < 0 else d for d in dims[1:]))

    return ModelIO(inputs=tuple(info(k, v, True) for k, v in sorted(signature.get("inputs", {}).items())),
                   outputs=tuple(info(k, v, False) for k, v in sorted(signature.get("outputs", {}).items())))


# --------------------------------------------------------------------------------------------------
# gRPC


def _fix_for(code_name: str, target: RemoteTarget, port_kind: str) -> str:
    """What to check when the server answered the metadata call with ``code_name``."""
    if code_name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return f"is the server running and the {port_kind} published?"
    if code_name in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
        return (f"TF Serving does not serve {target.describe()}: check the model name (models.config `name`, or "
                f"--model_name) and that the version or label is loaded (GET /v1/models/{target.model} on the REST "
                "port lists the versions and their state; labels are version_labels in models.config).")
    if code_name == "UNIMPLEMENTED":
        return f"is this TF Serving's {port_kind} (not the {'REST' if port_kind.startswith('gRPC') else 'gRPC'} one)?"
    return "see the server's log."


def _grpc_fault(exc: Any, target: RemoteTarget) -> TfdeployError:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    details = ((exc.details() if callable(getattr(exc, "details", None)) else str(exc)) or "").strip()
    reach = "Cannot reach" if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else "Error from"
    first = details.splitlines()[0][:300] if details else ""
    fix = ("is this TF Serving's gRPC port (--port, 8500), not its REST port (8501)?" if "HTTP/2" in details else
           _fix_for(name, target, "gRPC port (--port, 8500)"))
    return TfdeployError(f"{reach} TF Serving at {target.url} (StatusCode.{name}: {first}); {fix} "
                         f"Received: target={target.url!r}")


class GrpcClient:
    """TF Serving's PredictionService over one gRPC channel, shared by every client thread.

    Example:
        >>> client = GrpcClient(parse_target("grpc://localhost:8500/fashion"))          # doctest: +SKIP
        >>> outputs, version = client.predict({"image": x}, "serving_default")
    """

    def __init__(self, target: RemoteTarget) -> None:
        self.target = target
        self.runtime = f"TF Serving gRPC {target.address}"
        self._grpc = grpc()
        self._predict_pb2 = backend.tf_proto("predict_pb2")
        self._metadata_pb2 = backend.tf_proto("get_model_metadata_pb2")
        self.channel = self._grpc.insecure_channel(target.address, options=[
            ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
        self.stub = backend.tf_proto("prediction_service_pb2_grpc").PredictionServiceStub(self.channel)

    def _spec(self, spec: Any, signature_name: str | None = None) -> None:
        spec.name = self.target.model
        if self.target.version is not None:
            spec.version.value = self.target.version
        elif self.target.label is not None:
            spec.version_label = self.target.label
        if signature_name:
            spec.signature_name = signature_name

    def signature_defs(self) -> dict[str, Any]:
        """GetModelMetadata's ``signature_def``: signature name -> ``SignatureDef`` as a dict.

        Raises:
            TfdeployError: If the server cannot be reached or does not serve the model.
        """
        request = self._metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        try:
            response = self.stub.GetModelMetadata(request, timeout=CONNECT_TIMEOUT_S)
        except self._grpc.RpcError as exc:
            raise _grpc_fault(exc, self.target) from exc
        defs = self._metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata["signature_def"].Unpack(defs):
            raise TfdeployError(f"TF Serving at {self.target.url} returned no signature_def metadata; is it a "
                                f"TensorFlow SavedModel? Received: target={self.target.url!r}")
        as_dict = protobuf_json_format().MessageToDict(defs, preserving_proto_field_name=True)
        return as_dict.get("signature_def", {})

    def predict(self, inputs: Mapping[str, np.ndarray], signature_name: str, io: ModelIO) -> tuple[Arrays, int | None]:
        """One Predict call: the outputs, and the version that answered (``model_spec.version``).

        Raises:
            RequestFailed: If the call fails.
        """
        tf = backend.tf()
        request = self._predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self.stub.Predict(request, timeout=REQUEST_TIMEOUT_S)
        except self._grpc.RpcError as exc:
            raise RequestFailed(f"StatusCode.{exc.code().name}: {exc.details()}") from None
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}, version

    def close(self) -> None:
        """Closes the channel."""
        self.channel.close()


# --------------------------------------------------------------------------------------------------
# REST


def _to_json(value: np.ndarray) -> Any:
    """A tensor as TF Serving's JSON: nested lists, bytes as ``{"b64": ...}``."""
    if value.dtype.kind not in "OSU":
        return value.tolist()

    def leaf(item: Any) -> Any:
        if isinstance(item, list):
            return [leaf(i) for i in item]
        return {"b64": base64.b64encode(item).decode("ascii")} if isinstance(item, bytes) else str(item)

    return leaf(value.tolist())


def _from_json(value: Any, info: TensorInfo | None) -> np.ndarray:
    """A JSON tensor back as an array of the signature's dtype (``{"b64": ...}`` leaves as bytes)."""
    if info is not None and info.is_string:
        def leaf(item: Any) -> Any:
            if isinstance(item, list):
                return [leaf(i) for i in item]
            return base64.b64decode(item["b64"]) if isinstance(item, dict) else str(item).encode()

        return np.array(leaf(value), dtype=object)
    return np.asarray(value, dtype=info.dtype if info is not None and info.dtype != "bfloat16" else None)


class RestClient:
    """TF Serving's REST API with one keep-alive ``http.client`` connection per client thread.

    Example:
        >>> client = RestClient(parse_target("http://localhost:8501/v1/models/fashion"))   # doctest: +SKIP
        >>> client.status()[0]["state"]
        'AVAILABLE'
    """

    def __init__(self, target: RemoteTarget) -> None:
        self.target = target
        self.runtime = f"TF Serving REST {target.address}"
        self._local = threading.local()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self.target.host, self.target.port, timeout=REQUEST_TIMEOUT_S)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP request on this thread's connection (reconnecting once if the server closed it).

        Returns:
            The status and the decoded JSON body (``{"error": text}`` when it is not JSON).

        Raises:
            OSError: If the server cannot be reached.
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (0, 1):
            connection = self._connection(fresh=attempt > 0)
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt:
                    raise
        try:
            return response.status, json.loads(data or b"{}")
        except ValueError:
            return response.status, {"error": data[:300].decode("utf-8", "replace")}

    def _get(self, path: str) -> Any:
        try:
            status, body = self.request("GET", path)
        except http.client.HTTPException as exc:  # an answer that is not HTTP/1.1: the gRPC port, most likely
            raise TfdeployError(f"The server at {self.target.address} does not answer HTTP/1.1 ({type(exc).__name__}); "
                                f"is this TF Serving's REST port (--rest_api_port, 8501), not its gRPC port (8500)? "
                                f"Received: target={self.target.url!r}") from exc
        except OSError as exc:
            raise TfdeployError(f"Cannot reach TF Serving's REST API at {self.target.url} ({type(exc).__name__}: "
                                f"{exc}); is the server running and the REST port (--rest_api_port, 8501) "
                                f"published? Received: target={self.target.url!r}") from exc
        if status != 200 or not isinstance(body, dict):
            error = body.get("error", body) if isinstance(body, dict) else body
            code = _HTTP_CODES.get(status, "")
            raise TfdeployError(f"Error from TF Serving at {self.target.url} (HTTP {status}: {str(error)[:300]}); "
                                f"{_fix_for(code, self.target, 'REST port (--rest_api_port, 8501)')} "
                                f"Received: target={self.target.url!r}")
        return body

    def signature_defs(self) -> dict[str, Any]:
        """``GET .../metadata``'s ``signature_def``: signature name -> ``SignatureDef`` as a dict.

        Raises:
            TfdeployError: If the server cannot be reached or does not serve the model.
        """
        body = self._get(f"{self.target.rest_path}/metadata")
        defs = body.get("metadata", {}).get("signature_def", {}).get("signature_def")
        if not isinstance(defs, dict):
            raise TfdeployError(f"TF Serving at {self.target.url} returned no signature_def metadata; is it a "
                                f"TensorFlow SavedModel? Received: target={self.target.url!r}")
        return defs

    def status(self) -> list[dict[str, Any]]:
        """``GET /v1/models/MODEL[...]``'s ``model_version_status``: ``{"version", "state", "status"}`` per version."""
        return list(self._get(self.target.rest_path).get("model_version_status", []))

    def predict(self, inputs: Mapping[str, np.ndarray], signature_name: str, io: ModelIO) -> tuple[Arrays, int | None]:
        """``POST ...:predict`` (columnar); the version that answered is not in REST responses (``None``).

        Raises:
            RequestFailed: If the request fails.
        """
        body = {"signature_name": signature_name, "inputs": {k: _to_json(np.asarray(v)) for k, v in inputs.items()}}
        try:
            status, answer = self.request("POST", f"{self.target.rest_path}:predict", body)
        except (OSError, http.client.HTTPException) as exc:
            raise RequestFailed(f"{type(exc).__name__}: {exc}") from None
        if status != 200 or "outputs" not in answer:
            raise RequestFailed(f"HTTP {status}: {str(answer.get('error', answer))[:300]}")
        outputs = answer["outputs"]
        if not isinstance(outputs, dict):  # one output: TF Serving returns its value alone
            outputs = {io.output_names[0] if io.outputs else "output": outputs}
        return {k: _from_json(v, next((t for t in io.outputs if t.name == k), None)) for k, v in outputs.items()}, None

    def close(self) -> None:
        """Closes this thread's connection (the others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()


Client = GrpcClient | RestClient


def connect(target: str | RemoteTarget) -> Client:
    """A client of the target's API (no request made yet).

    Example:
        >>> connect("http://localhost:8501/v1/models/fashion").runtime      # doctest: +SKIP
        'TF Serving REST localhost:8501'
    """
    target = parse_target(target) if isinstance(target, str) else target
    return GrpcClient(target) if target.scheme == "grpc" else RestClient(target)


def remote_predictor(target: str, signature_name: str = "serving_default") -> Predictor:
    """A :class:`Predictor` sending every batch to TF Serving, its inputs read from the served signature.

    One predictor serves every client thread (one gRPC channel; one REST connection per thread).
    Its ``loaded`` is the client (:func:`connect`).

    Args:
        target: A target URL (see the module docstring).
        signature_name: The signature to call.

    Returns:
        The predictor; its ``predict_batch`` raises :class:`RequestFailed` for a failed request.

    Raises:
        TfdeployError: For a malformed URL, a server that cannot be reached, an unknown model,
            version, label or signature.

    Example:
        >>> remote_predictor("grpc://localhost:8500/fashion@stable").runtime      # doctest: +SKIP
        'TF Serving gRPC localhost:8500'
    """
    client = connect(target)
    io = signature_io(client.signature_defs(), signature_name, client.target)

    def predict_batch(inputs: Arrays) -> Arrays:
        return client.predict(inputs, signature_name, io)[0]

    return Predictor(name=target, runtime=client.runtime, io=io, predict_batch=predict_batch, max_batch=2**31 - 1,
                     loaded=client)
