"""Remote bench targets without a server: URL forms, the served signature as JSON, REST tensors."""

import base64
import subprocess
import sys

import numpy as np
import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.measure.remote import RemoteTarget, _from_json, _to_json, is_remote, parse_target, signature_io


@pytest.mark.parametrize("url,expected", [
    ("grpc://localhost:8500/fashion", RemoteTarget("grpc://localhost:8500/fashion", "grpc", "localhost", 8500, "fashion")),
    ("grpc://serving/fashion/3", RemoteTarget("grpc://serving/fashion/3", "grpc", "serving", 8500, "fashion", 3)),
    ("grpc://[::1]:9000/fashion@stable", RemoteTarget("grpc://[::1]:9000/fashion@stable", "grpc", "::1", 9000, "fashion",
                                                      label="stable")),
    ("http://h:8501/v1/models/fashion", RemoteTarget("http://h:8501/v1/models/fashion", "http", "h", 8501, "fashion")),
    ("http://h/v1/models/fashion/versions/2/", RemoteTarget("http://h/v1/models/fashion/versions/2/", "http", "h", 8501,
                                                            "fashion", 2)),
    ("HTTP://h:1/v1/models/f/labels/canary", RemoteTarget("HTTP://h:1/v1/models/f/labels/canary", "http", "h", 1, "f",
                                                          label="canary")),
])
def test_target_forms(url, expected):
    assert is_remote(url)
    assert parse_target(url) == expected


def test_addresses_and_rest_paths():
    assert parse_target("grpc://[::1]:9000/m@l").address == "[::1]:9000"
    assert parse_target("grpc://h/m/4").rest_path == "/v1/models/m/versions/4"
    assert parse_target("grpc://h/m@l").rest_path == "/v1/models/m/labels/l"
    assert parse_target("http://h/v1/models/m").describe() == "model 'm'"


@pytest.mark.parametrize("url,expected", [
    ("grpc://localhost:8500/", r"Malformed grpc:// target: expected grpc://HOST:PORT/MODEL\[/VERSION\|@LABEL\]\. "
                               r"Received: target='grpc://localhost:8500/'"),
    ("grpc://h:port/m", "Malformed grpc:// target"),
    ("grpc://h/m/v2", "Malformed grpc:// target"),
    ("http://h:8501/v1/models/m:predict", r"Malformed http:// target: expected http://HOST:PORT/v1/models/MODEL"
                                          r"\[/versions/N\|/labels/LABEL\] \(the model's resource, not its :predict URL\)"),
    ("http://h/fashion", "Malformed http:// target"),
    ("https://h/v1/models/m", r"A remote bench target must be grpc:// or http://; expected grpc://HOST:PORT/MODEL"
                              r"\[/VERSION\|@LABEL\] \(gRPC\) or http://HOST:PORT/v1/models/MODEL.* Received: "
                              r"target='https://h/v1/models/m'"),
])
def test_malformed_targets_say_which_form_is_expected(url, expected):
    with pytest.raises(TfdeployError, match=expected):
        parse_target(url)


def test_local_paths_are_not_remote():
    assert not any(is_remote(p) for p in ("models/fashion/1", "out/ptq-int8.tflite", "C:\\m.keras", "grpc:/x"))


# TF Serving's own REST example (GET /v1/models/half_plus_two/metadata), with a string and an int input added.
SIGNATURE_DEFS = {
    "serving_default": {
        "inputs": {
            "x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
                                                        "unknown_rank": False}, "name": "x:0"},
            "text": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "-1"}]}, "name": "t:0"},
            "ids": {"dtype": "DT_INT32", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "5"}]}, "name": "i:0"},
        },
        "outputs": {"y": {"dtype": "DT_HALF", "tensor_shape": {"dim": [{"size": "-1"}]}, "name": "y:0"}},
        "method_name": "tensorflow/serving/predict",
    },
}


def test_the_served_signature_becomes_named_inputs():
    io = signature_io(SIGNATURE_DEFS, "serving_default", parse_target("grpc://h/m"))
    assert [(t.name, t.dtype, t.shape) for t in io.inputs] == [("ids", "int32", (5,)), ("text", "string", (None,)),
                                                               ("x", "float32", (3,))]
    assert [(t.name, t.dtype, t.shape) for t in io.outputs] == [("y", "float16", ())]


def test_an_unknown_signature_or_rank_is_an_error():
    with pytest.raises(TfdeployError, match=r"model 'm' at h:8500 has no signature 'other' \(it serves "
                                            r"\['serving_default'\]\); pass --signature NAME\. Received: "
                                            r"target='grpc://h/m', signature_name='other'"):
        signature_io(SIGNATURE_DEFS, "other", parse_target("grpc://h/m"))
    unknown = {"s": {"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"unknown_rank": True}}}}}
    with pytest.raises(TfdeployError, match="Input 'x' of signature 's' has unknown rank"):
        signature_io(unknown, "s", parse_target("grpc://h/m"))


def test_rest_tensors_round_trip_with_b64_strings():
    texts = np.array([[b"caf\xc3\xa9"], [b"\x00\xff"]], dtype=object)
    encoded = _to_json(texts)
    assert encoded == [[{"b64": base64.b64encode(b"caf\xc3\xa9").decode()}], [{"b64": "AP8="}]]
    info = signature_io(SIGNATURE_DEFS, "serving_default", parse_target("grpc://h/m"))
    decoded = _from_json(encoded, info.input("text"))
    assert decoded.dtype == object and decoded.tolist() == texts.tolist()
    floats = np.array([[0.1, 1e-30, 3.0]], dtype="float32")
    np.testing.assert_array_equal(_from_json(_to_json(floats), info.input("x")), floats)
    assert _from_json(_to_json(np.arange(5, dtype="int32")[None]), info.input("ids")).dtype == np.int32


def test_parsing_targets_imports_no_tensorflow():
    code = ("import sys; from tfdeploy.measure.remote import parse_target; parse_target('grpc://h/m'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'grpc')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_request_log_tags_a_sample_from_the_result():
    from tfdeploy.measure.timing import RequestLog

    log = RequestLog()
    assert log.request(lambda: ({}, 7), tag="before", tag_of=lambda result: result[1])
    assert not log.request(lambda: 1 / 0, tag_of=lambda result: result)
    assert [tag for _, _, tag in log.samples] == [7] and log.errors == ["ZeroDivisionError: division by zero"]


def test_failed_warmup_requests_do_not_stop_the_load():
    from tfdeploy.measure.timing import run_load

    calls = []

    def flaky(index):
        calls.append(index)
        if len(calls) % 3 == 0:
            raise ConnectionError("server hiccup")

    load = run_load(flaky, requests=9, duration_s=None, concurrency=2, warmup_requests=3)
    assert len(calls) == 6 + 9 and len(load.samples) + len(load.errors) == 9 and load.errors
