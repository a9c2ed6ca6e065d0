"""kserve.yaml: a ServingRuntime running the built image with run.sh's flags, an InferenceService per model selecting
it, every document valid against KServe's own CRD schemas (vendored in tests/data/kserve), and warnings for what
KServe cannot take as given (a local storageUri, a name that is not a Kubernetes name, a version policy)."""

import copy
import dataclasses
import functools
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tfdeploy.errors import TfdeployError
from tfdeploy.serving.config import (SERVING_FILES, ServedModel, ServingConfig, ServingFile, VersionPolicy,
                                     kserve_warnings, server_flags)
from tfdeploy.serving.config import registry

DATA = Path(__file__).parents[1] / "data" / "kserve"
SCHEMAS = {("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime.v1alpha1.schema.json.gz",
           ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice.v1beta1.schema.json.gz"}


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's strict field validation (kubectl's default) does:
    ``additionalProperties: false`` on every object listing its properties, unless it preserves unknown fields."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    assert (api_version, kind) in SCHEMAS, f"no KServe CRD schema for {api_version} {kind}"
    schema = json.loads(gzip.decompress((DATA / SCHEMAS[api_version, kind]).read_bytes()))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(strict(schema))


def errors(document: dict) -> list[str]:
    """What the CRD schema of the document's apiVersion and kind says is wrong with it, as 'path: message'."""
    found = validator(document["apiVersion"], document["kind"]).iter_errors(document)
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in found)


def kserve_text(config: ServingConfig) -> str:
    return next(file for file in SERVING_FILES if file.name == "kserve.yaml").render(config)


def documents(config: ServingConfig) -> list[dict]:
    return list(yaml.safe_load_all(kserve_text(config)))


def config_of(*models: ServedModel, **options: Any) -> ServingConfig:
    return ServingConfig(list(models) or [ServedModel("fashion", "models/fashion", storage_uri="gs://b/fashion")],
                         "serving", **options)


TWO_MODELS = config_of(ServedModel("fashion", "models/fashion", storage_uri="gs://bucket/fashion"),
                       ServedModel("digits", "models/digits", storage_uri="pvc://models-claim/digits"),
                       built_image="ghcr.io/acme/tfdeploy-serving:1", enable_batching=True, num_load_threads=3,
                       monitoring_path="/metrics/tf")


def test_every_document_is_valid_for_kserves_crds():
    docs = documents(TWO_MODELS)
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("serving.kserve.io/v1alpha1", "ServingRuntime"), ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1beta1", "InferenceService")]
    assert [errors(d) for d in docs] == [[], [], []]


def _set(document: dict, path: str, value: Any) -> dict:
    changed = copy.deepcopy(document)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = functools.reduce(lambda n, key: n[key], parents, changed)
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize("index, path, value, message", [
    (0, "spec/containers/0/args", "--port=9000", "spec/containers/0/args: '--port=9000' is not of type 'array'"),
    (0, "spec/containers/0/ports/0/containerPort", "8080", "containerPort: '8080' is not of type 'integer'"),
    (0, "spec/supportedModelFormats/0/autoSelect", "false", "autoSelect: 'false' is not of type 'boolean'"),
    (0, "spec/containers/0/name", KeyError, "spec/containers/0: 'name' is a required property"),
    (1, "spec/predictor/model/runtme", "tfdeploy-tensorflow-serving", "('runtme' was unexpected)"),
    (1, "spec/predictor/model/storageUri", ["gs://b/fashion"], "storageUri: ['gs://b/fashion'] is not of type"),
])
def test_the_schemas_reject_a_wrong_document(index, path, value, message):
    """The validation above can fail: a wrong type, a missing required field or an unknown field is refused."""
    document = documents(TWO_MODELS)[index]
    assert errors(document) == []
    found = errors(_set(document, path, value))
    assert len(found) == 1 and message in found[0], found


def test_the_runtime_runs_the_built_image_with_run_sh_flags_and_kserves_port_and_model():
    runtime = documents(TWO_MODELS)[0]
    assert runtime["metadata"]["name"] == "tfdeploy-tensorflow-serving"
    spec = runtime["spec"]
    assert spec["supportedModelFormats"] == [{"name": "tensorflow", "version": "2", "autoSelect": False}]
    assert spec["protocolVersions"] == ["v1", "grpc-v1"]
    assert spec["annotations"] == {"prometheus.kserve.io/port": "8080", "prometheus.kserve.io/path": "/metrics/tf"}
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "ghcr.io/acme/tfdeploy-serving:1"
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert container["args"] == [
        "--port=9000", "--rest_api_port=8080", "--model_name={{.Name}}", "--model_base_path=/mnt/models",
        "--platform_config_file=/config/platform_config.txt", "--monitoring_config_file=/config/monitoring.config",
        "--enable_batching=true", "--batching_parameters_file=/config/batching_parameters.txt",
        "--num_load_threads=3", "--num_unload_threads=2", "--file_system_poll_wait_seconds=30"]
    # run.sh's flags are the same apart from the ports and models.config's flag
    docker = server_flags(TWO_MODELS)
    assert docker[:3] == ["--port=8500", "--rest_api_port=8501", "--model_config_file=/config/models.config"]
    assert docker[3:] == container["args"][4:]
    assert "pushed to a registry the cluster can pull from" in kserve_text(TWO_MODELS)


def test_a_flag_added_to_the_registry_reaches_the_runtime(monkeypatch):
    extra = ServingFile("ssl.config", "TLS", "`--ssl_config_file`", lambda config: "x\n", in_container=True,
                        proto=False, flags=("--ssl_config_file={path}",))
    monkeypatch.setattr(registry, "SERVING_FILES", (*SERVING_FILES, extra))
    runtime = documents(TWO_MODELS)[0]
    assert "--ssl_config_file=/config/ssl.config" in runtime["spec"]["containers"][0]["args"]
    assert errors(runtime) == []
    without_models = tuple(f for f in SERVING_FILES if f.name != "models.config")
    monkeypatch.setattr(registry, "SERVING_FILES", without_models)
    with pytest.raises(TfdeployError, match="replace those of models.config, which is not registered"):
        kserve_text(TWO_MODELS)


def test_each_inference_service_selects_the_runtime_with_its_storage_uri():
    services = documents(TWO_MODELS)[1:]
    assert [s["metadata"]["name"] for s in services] == ["fashion", "digits"]
    assert [s["spec"]["predictor"]["model"] for s in services] == [
        {"modelFormat": {"name": "tensorflow"}, "runtime": "tfdeploy-tensorflow-serving",
         "storageUri": "gs://bucket/fashion"},
        {"modelFormat": {"name": "tensorflow"}, "runtime": "tfdeploy-tensorflow-serving",
         "storageUri": "pvc://models-claim/digits"}]
    assert kserve_warnings(TWO_MODELS) == []


@pytest.mark.parametrize("uri, local", [
    (None, True), ("/srv/models/fashion", True), ("file:///srv/models/fashion", True),
    ("gs://b/fashion", False), ("s3://b/fashion", False), ("pvc://claim/fashion", False),
    ("https://host/fashion.tar.gz", False), ("hdfs://nn/fashion", False), ("webhdfs://nn/fashion", False),
    ("oci://registry/fashion:1", False),
])
def test_a_local_storage_uri_is_warned_about_in_the_report_and_the_yaml(uri, local):
    config = config_of(ServedModel("fashion", "models/fashion", storage_uri=uri))
    expected = (f"kserve.yaml: model 'fashion' has a local storageUri ({uri or 'models/fashion'}), which KServe's "
                "storage initializer cannot copy: upload the base dir with its numbered versions first (object "
                "storage or a PVC) and pass --storage-uri fashion=gs://BUCKET/fashion (or s3://, pvc://, https://, "
                "...).")
    assert kserve_warnings(config) == ([expected] if local else [])
    text = kserve_text(config)
    assert ("# WARNING: model 'fashion' has a local storageUri" in text) is local
    service = documents(config)[1]
    assert service["spec"]["predictor"]["model"]["storageUri"] == (uri or "models/fashion")
    assert errors(service) == []


def test_an_unknown_scheme_is_warned_about():
    (warning,) = kserve_warnings(config_of(ServedModel("fashion", "x", storage_uri="ftp://host/fashion")))
    assert warning.startswith("kserve.yaml: model 'fashion' has storageUri ftp://host/fashion, whose scheme KServe's "
                              "storage initializer does not copy (it takes gs://, s3://, pvc://")


def test_names_become_kubernetes_names_and_clashes_are_refused():
    config = config_of(ServedModel("Fashion_MNIST", "m", storage_uri="gs://b/m"),
                       ServedModel("2025.model", "n", storage_uri="gs://b/n"))
    assert [d["metadata"]["name"] for d in documents(config)[1:]] == ["fashion-mnist", "model-2025-model"]
    assert kserve_warnings(config) == [
        "kserve.yaml: model 'Fashion_MNIST' is the InferenceService 'fashion-mnist' (a Kubernetes name); on KServe "
        "clients call it by that name.",
        "kserve.yaml: model '2025.model' is the InferenceService 'model-2025-model' (a Kubernetes name); on KServe "
        "clients call it by that name."]
    clash = config_of(ServedModel("my_model", "m", storage_uri="gs://b/m"),
                      ServedModel("my-model", "n", storage_uri="gs://b/n"))
    with pytest.raises(TfdeployError, match=r"same KServe InferenceService name \['my-model'\]; rename one. "
                                            r"Received: models=\['my_model', 'my-model'\]"):
        kserve_text(clash)


def test_a_version_policy_the_runtime_cannot_apply_is_warned_about():
    model = ServedModel("fashion", "m", storage_uri="gs://b/m", policy=VersionPolicy.ALL, labels={"stable": 1})
    assert kserve_warnings(config_of(model)) == [
        "kserve.yaml: the version policy and labels of model 'fashion' are in models.config, which the KServe runtime "
        "does not read (it passes --model_base_path=/mnt/models): there TF Serving serves the latest version."]
    assert kserve_warnings(config_of(dataclasses.replace(model, policy=VersionPolicy.LATEST, labels={}))) == []
