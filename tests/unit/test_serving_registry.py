"""The registry of generated TF Serving files: checked at import, and the single source of every file list."""

import dataclasses

import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.serving.config import (SERVING_FILES, ServingConfig, ServingFile, container_files, server_flags,
                                     validate_registry)
from tfdeploy.serving.config import registry


def _entry(**changes):
    base = ServingFile("extra.txt", "an extra file", "`--extra_file`", lambda config: "x\n", in_container=True,
                       proto=False, flags=("--extra_file={path}",))
    return dataclasses.replace(base, **changes)


def test_the_shipped_registry_is_valid_and_lists_every_file_once():
    validate_registry(SERVING_FILES)
    assert [f.name for f in SERVING_FILES] == [
        "models.config", "platform_config.txt", "monitoring.config", "batching_parameters.txt", "run.sh",
        "Dockerfile", "docker-compose.yml", "kserve.yaml", "README.md"]
    assert [f.name for f in SERVING_FILES if f.proto] == [
        "models.config", "platform_config.txt", "monitoring.config", "batching_parameters.txt"]


@pytest.mark.parametrize("changes, message", [
    ({"name": ""}, "needs a plain file name"),
    ({"name": "sub/dir.txt"}, "needs a plain file name"),
    ({"purpose": ""}, "needs a one-line purpose"),
    ({"read_by": "two\nlines"}, "needs a one-line read_by"),
    ({"build": None}, "needs a builder function"),
    ({"proto": None}, "needs proto True or False"),
    ({"flags": ["--extra_file={path}"]}, "needs flags as a tuple"),
    ({"flags": ("extra_file",)}, "needs flags as a tuple of '--flag' strings"),
    ({"in_container": False}, "implies server flags but is not in the container"),
    ({"flags": (), "flags_when": lambda config: True}, "has flags_when without flags"),
])
def test_an_incomplete_entry_is_named(changes, message):
    with pytest.raises(TfdeployError, match=message + ".*Received: entry="):
        validate_registry([*SERVING_FILES, _entry(**changes)])


def test_duplicate_names_are_refused():
    with pytest.raises(TfdeployError, match=r"unique. Received: duplicates=\['run.sh'\]"):
        validate_registry([*SERVING_FILES, _entry(name="run.sh")])


def test_copy_line_flags_and_readme_are_derived_from_the_registry(monkeypatch):
    config = ServingConfig([], "serving", enable_batching=False)
    assert container_files() == ["models.config", "platform_config.txt", "monitoring.config",
                                 "batching_parameters.txt", "run.sh"]
    assert "--batching_parameters_file=/config/batching_parameters.txt" not in server_flags(config)
    assert server_flags(dataclasses.replace(config, enable_batching=True))[5:7] == [
        "--enable_batching=true", "--batching_parameters_file=/config/batching_parameters.txt"]

    monkeypatch.setattr(registry, "SERVING_FILES", (*SERVING_FILES, _entry()))
    assert container_files()[-1] == "extra.txt"
    assert "--extra_file=/config/extra.txt" in server_flags(config)
    dockerfile = registry._dockerfile(config)
    assert "COPY models.config platform_config.txt monitoring.config batching_parameters.txt run.sh extra.txt " \
           "/config/\n" in dockerfile
    readme = registry._readme(config)
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert len(rows) == len(SERVING_FILES) + 1
    assert rows[-1] == "| `extra.txt` | `--extra_file` | an extra file |"


def test_a_builder_returning_the_wrong_kind_is_named():
    config = ServingConfig([], "serving")
    with pytest.raises(TfdeployError, match="must return a protobuf message.*Received: type=str"):
        _entry(proto=True).render(config)
    with pytest.raises(TfdeployError, match="must return the file's text.*Received: type=int"):
        _entry(build=lambda config: 3).render(config)


def test_other_ports_and_model_flags_replace_only_those():
    """KServe's runtime takes run.sh's flags with its own ports and one model instead of models.config."""
    config = ServingConfig([], "serving", enable_batching=True)
    default = server_flags(config)
    assert default[2] == "--model_config_file=/config/models.config"
    other = server_flags(config, grpc_port=9000, rest_port=8080, model_flags=("--model_name=m", "--model_base_path=/x"))
    assert other == ["--port=9000", "--rest_api_port=8080", "--model_name=m", "--model_base_path=/x", *default[3:]]
    assert server_flags(config, model_flags=()) == [*default[:2], *default[3:]]
