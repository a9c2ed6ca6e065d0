"""A stand-in for TF Serving in the tests: its gRPC PredictionService and REST API over real SavedModels.

Not TF Serving (whose binary cannot be installed here) and never shipped: just enough of its API for
``tfdeploy bench`` against ``grpc://`` and ``http://`` targets to be tested end to end.

* gRPC (a real ``grpc.server``, ``add_PredictionServiceServicer_to_server``): ``Predict`` and
  ``GetModelMetadata`` (``signature_def``), honouring ``model_spec.version``/``version_label``,
  answering ``model_spec.version``, NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for
  an unknown label, a wrong input key or dtype (as TF Serving does);
* REST (``http.server.ThreadingHTTPServer``, keep-alive): ``GET /v1/models/M[/versions/N|/labels/L]``
  (status), ``GET .../metadata``, ``POST ...:predict`` in the columnar format (``{"b64": ...}``
  strings; one output is returned as its value alone);
* versions: every numeric directory of each base dir, loaded with ``tf.saved_model.load``; the
  latest AVAILABLE one answers requests without a version. With ``poll_s``, a thread polls the base
  dirs like TF Serving's file-system source: a new version is LOADING, its warmup file is replayed
  (``replay_version_warmup``), then it is AVAILABLE and takes the traffic.
* ``fail_every = N`` makes every Nth Predict fail (INTERNAL / HTTP 500); ``fail_loads = True`` makes the
  versions the poller finds fail to load (state END with an error message in the status).

Example:
    >>> with StubServing({"m": base_dir}) as server:                    # doctest: +SKIP
    ...     bench(BenchConfig([server.grpc_url("m"), server.rest_url("m")]))
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from tfdeploy.serving.warmup import has_warmup, replay_version_warmup

HTTP_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.INTERNAL: 500}


class Status(Exception):
    """An error TF Serving would answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Version:
    """One loaded SavedModel version."""

    def __init__(self, path: Path) -> None:
        self.number = int(path.name)
        self.path = path
        self.loaded = tf.saved_model.load(str(path))
        saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        graph = next(g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags)
        self.signature_defs = {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature = self.signature_defs.get(signature_name or "serving_default")
        if signature is None:
            raise Status(grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: \"{signature_name}\" not found")
        if set(inputs) != set(signature.inputs):
            raise Status(grpc.StatusCode.INVALID_ARGUMENT,
                         f"input keys {sorted(inputs)} do not match the signature's {sorted(signature.inputs)}")
        for key, value in inputs.items():
            want = tf.dtypes.as_dtype(signature.inputs[key].dtype)
            got = tf.string if value.dtype.kind in "OSU" else tf.dtypes.as_dtype(value.dtype)
            if got != want:
                raise Status(grpc.StatusCode.INVALID_ARGUMENT, f"Expects arg {key} to be {want.name} but "
                                                               f"{got.name} is provided")
        outputs = self.loaded.signatures[signature_name or "serving_default"](
            **{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}


class StubServing:
    """The stand-in server (see the module docstring); ``with StubServing(...) as server:`` starts and stops it."""

    def __init__(self, models: dict[str, Path], labels: dict[str, dict[str, int]] | None = None,
                 poll_s: float | None = None) -> None:
        self.base_dirs = {name: Path(base) for name, base in models.items()}
        self.labels = labels or {}
        self.poll_s = poll_s
        self.versions: dict[str, dict[int, Version]] = {name: {} for name in models}
        self.loading: dict[str, int | None] = {name: None for name in models}
        self.events: list[tuple[float, str, str, int]] = []  # (perf_counter, event, model, version)
        self.warmup_calls: dict[tuple[str, int], int] = {}  # warmup records replayed before a version was AVAILABLE
        self.fail_every = 0
        self.fail_loads = False  # new versions found by the poller fail to load (state END, as TF Serving reports)
        self.failed: dict[str, dict[int, str]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # the model store ------------------------------------------------------------------------------

    def _new_versions(self, name: str) -> list[Path]:
        return sorted((p for p in self.base_dirs[name].iterdir() if p.name.isdigit() and p.is_dir()
                       and int(p.name) not in self.versions[name]), key=lambda p: int(p.name))

    def _load(self, name: str, path: Path, warm: bool) -> None:
        self.loading[name] = int(path.name)
        self.events.append((time.perf_counter(), "loading", name, int(path.name)))
        version = Version(path)
        if warm and has_warmup(path):
            self.warmup_calls[(name, version.number)] = replay_version_warmup(path, version.loaded.signatures)
        with self._lock:
            self.versions[name][version.number] = version
            self.loading[name] = None
        self.events.append((time.perf_counter(), "available", name, version.number))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            for name in self.base_dirs:
                for path in self._new_versions(name):
                    if int(path.name) in self.failed.get(name, {}):
                        continue
                    if self.fail_loads:
                        self.failed.setdefault(name, {})[int(path.name)] = "injected load failure"
                        continue
                    self._load(name, path, warm=True)

    def resolve(self, name: str, version: int | None, label: str | None) -> Version:
        """The version a model spec asks for, as TF Serving resolves it."""
        with self._lock:
            served = dict(self.versions.get(name, {}))
        if not served:
            raise Status(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if label:
            if label not in self.labels.get(name, {}):
                raise Status(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = self.labels[name][label]
        if version is None:
            return served[max(served)]
        if version not in served:
            raise Status(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
        return served[version]

    def predict(self, name: str, version: int | None, label: str | None, signature_name: str,
                inputs: dict[str, np.ndarray]) -> tuple[int, dict[str, np.ndarray]]:
        served = self.resolve(name, version, label)
        with self._lock:
            self._count += 1
            fail = self.fail_every and self._count % self.fail_every == 0
        if fail:
            raise Status(grpc.StatusCode.INTERNAL, "injected failure")
        return served.number, served.run(signature_name, inputs)

    def status(self, name: str, version: int | None, label: str | None) -> list[dict[str, Any]]:
        if version is not None or label:
            numbers = [self.resolve(name, version, label).number]
        else:
            self.resolve(name, None, None)
            numbers = sorted(self.versions[name])
        states = [(n, "AVAILABLE", "") for n in numbers] + ([(self.loading[name], "LOADING", "")]
                                                              if self.loading.get(name) and version is None else [])
        if version is None and not label:
            states += [(n, "END", message) for n, message in self.failed.get(name, {}).items()]
        return [{"version": str(n), "state": state,
                 "status": {"error_code": "UNKNOWN" if message else "OK", "error_message": message}}
                for n, state, message in states]

    # servers --------------------------------------------------------------------------------------

    def start(self) -> "StubServing":
        for name in self.base_dirs:
            for path in self._new_versions(name):
                self._load(name, path, warm=False)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Servicer(self), self.grpc_server)
        self.grpc_port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()
        handler = type("Handler", (_RestHandler,), {"serving": self})
        self.http_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http_server.block_on_close = False
        self.rest_port = self.http_server.server_address[1]
        threading.Thread(target=self.http_server.serve_forever, daemon=True).start()
        if self.poll_s:
            self._poller = threading.Thread(target=self._poll, daemon=True)
            self._poller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.grpc_server.stop(grace=None)
        self.http_server.shutdown()
        self.http_server.server_close()
        if self._poller is not None:
            self._poller.join()

    def __enter__(self) -> "StubServing":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def grpc_url(self, model: str, suffix: str = "") -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/{model}{suffix}"

    def rest_url(self, model: str, suffix: str = "") -> str:
        return f"http://127.0.0.1:{self.rest_port}/v1/models/{model}{suffix}"


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, serving: StubServing) -> None:
        self.serving = serving

    @staticmethod
    def _spec(spec: Any) -> tuple[str, int | None, str | None]:
        return spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label or None

    def Predict(self, request: Any, context: Any) -> Any:
        try:
            number, outputs = self.serving.predict(*self._spec(request.model_spec), request.model_spec.signature_name,
                                                   {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except Status as status:
            context.abort(status.code, status.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            version = self.serving.resolve(*self._spec(request.model_spec))
        except Status as status:
            context.abort(status.code, status.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version.number
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, value in version.signature_defs.items():
            defs.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(defs)
        return response


_ROUTE = re.compile(r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<verb>/metadata|:predict)?$")


def _decode(value: Any, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        def leaf(item: Any) -> Any:
            if isinstance(item, list):
                return [leaf(i) for i in item]
            return base64.b64decode(item["b64"]) if isinstance(item, dict) else item.encode()

        return np.array(leaf(value), dtype=object)
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


def _encode(value: np.ndarray) -> Any:
    if value.dtype.kind not in "OS":
        return value.tolist()

    def leaf(item: Any) -> Any:
        return [leaf(i) for i in item] if isinstance(item, list) else {"b64": base64.b64encode(item).decode()}

    return leaf(value.tolist())


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's REST server
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
    serving: StubServing

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        route = _ROUTE.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        if route is None or (method == "POST") != (route["verb"] == ":predict"):
            return self._send(404, {"error": f"Malformed request: {method} {self.path}"})
        spec = (route["model"], int(route["version"]) if route["version"] else None, route["label"])
        try:
            if route["verb"] is None:
                return self._send(200, {"model_version_status": self.serving.status(*spec)})
            version = self.serving.resolve(*spec)
            if route["verb"] == "/metadata":
                defs = get_model_metadata_pb2.SignatureDefMap()
                for key, value in version.signature_defs.items():
                    defs.signature_def[key].CopyFrom(value)
                return self._send(200, {"model_spec": {"name": spec[0], "signature_name": "",
                                                       "version": str(version.number)},
                                        "metadata": {"signature_def": json_format.MessageToDict(
                                            defs, preserving_proto_field_name=True)}})
            self._predict(spec, version, json.loads(payload))
        except Status as status:
            self._send(HTTP_STATUS.get(status.code, 500), {"error": status.message})

    def _predict(self, spec: tuple[str, int | None, str | None], version: Version, body: dict[str, Any]) -> None:
        signature_name = body.get("signature_name", "serving_default")
        signature = version.signature_defs.get(signature_name)
        if signature is None or not isinstance(body.get("inputs"), dict):
            raise Status(grpc.StatusCode.INVALID_ARGUMENT, "expected a known signature_name and columnar inputs")
        inputs = {k: _decode(v, tf.dtypes.as_dtype(signature.inputs[k].dtype)) if k in signature.inputs else
                  np.asarray(v) for k, v in body["inputs"].items()}
        _, outputs = self.serving.predict(*spec, signature_name, inputs)
        encoded = {k: _encode(v) for k, v in outputs.items()}
        self._send(200, {"outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
