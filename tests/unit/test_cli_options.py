"""Shared CLI options: one meaning of --json, the model-loading options everywhere a model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tfdeploy.cli import main
from tfdeploy.cli.options import help_of
from tfdeploy.compression import CompressConfig

from cli_stubs import COMMANDS, stub_library

MODEL_LOADING = ["compress", "export", "verify", "bench", "check determinism", "check parity", "deploy"]


@pytest.fixture
def library(monkeypatch):
    return stub_library(monkeypatch)


def invoke(*argv: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(argv))


@pytest.mark.parametrize("path", MODEL_LOADING)
def test_every_command_that_loads_a_model_takes_the_loading_options(path):
    names = {p.name for p in COMMANDS[f"tfdeploy {path}"].params}
    assert {"custom_object_specs", "safe_mode"} <= names


def test_verify_passes_custom_objects_and_unsafe_deserialization(library):
    result = invoke("verify", "models/m/1", "--custom-objects", "collections:OrderedDict", "--unsafe-deserialization")
    assert result.exit_code == 0, result.output
    _, kwargs = library["verify"]
    assert list(kwargs["custom_objects"]) == ["OrderedDict"] and kwargs["safe_mode"] is False
    assert "--unsafe-deserialization" in result.stderr


@pytest.mark.parametrize("path", [path for path, command in COMMANDS.items() if not isinstance(command, click.Group)])
def test_json_prints_the_report_everywhere(path):
    (option,) = [p for p in COMMANDS[path].params if "--json" in p.opts]
    assert option.name == "as_json" and option.help == "Print the report as JSON."


def test_bench_json_prints_and_json_out_writes(library):
    result = invoke("bench", "a.tflite", "--json", "--json-out", "b.json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {} and result.stderr == ""
    (config,), _ = library["bench"]
    assert config.json_path == Path("b.json")


def test_bench_json_path_still_works_for_one_release(library):
    result = invoke("bench", "a.tflite", "--json", "b.json", "--plot", "b.png")
    assert result.exit_code == 0, result.output
    (config,), _ = library["bench"]
    assert config.json_path == Path("b.json") and config.plot_path == Path("b.png")
    assert result.stdout == "table\n"
    assert "--json PATH is deprecated" in result.stderr and "--json-out b.json" in result.stderr
    both = invoke("bench", "a.tflite", "--json", "b.json", "--json-out", "c.json")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_bench_requests_or_duration(library):
    assert invoke("bench", "a.tflite", "--duration", "2").exit_code == 0
    (config,), _ = library["bench"]
    assert config.requests is None and config.duration_s == 2.0
    for argv in (["--requests", "5", "--duration", "1"], ["--duration", "1", "--requests", "5"]):
        result = invoke("bench", "a.tflite", *argv)
        assert result.exit_code == 2 and "give --requests or --duration, not both" in result.stderr
    bad = invoke("bench", "a.tflite", "--hot-swap-seconds", "3")
    assert bad.exit_code == 2 and "expected BEFORE,AFTER seconds" in bad.stderr


def test_options_reach_the_config(library):
    result = invoke("compress", "m.keras", "--out", "o", "--recipe", "prune,ptq-int8", "--io-dtype", "int8",
                    "--epochs", "3", "--auto", "--timeout", "9", "--relative-budget", "--objective", "latency")
    assert result.exit_code == 0, result.output
    (config,), _ = library["auto_compress"]
    assert (config.timeout_s, config.relative, config.objective.value) == (9.0, True, "latency")
    assert [r.value for r in config.compress.recipes] == ["prune", "ptq-int8"]
    assert (config.compress.io_dtype.value, config.compress.epochs) == ("int8", 3)
    result = invoke("export", "m.keras", "--base-dir", "b", "--version", "4", "--no-warmup", "--signature-batch-size",
                    "8", "--extra-signature", "b8:8", "--warmup-batch-sizes", "1,8")
    assert result.exit_code == 0, result.output
    (config,), _ = library["export"]
    assert (config.version, config.warmup, config.batch_size) == (4, False, 8)
    assert config.extra_signatures == {"b8": 8} and config.warmup_batch_sizes == (1, 8)


def test_help_text_from_the_config_docstring():
    assert help_of(CompressConfig, "learning_rate") == "Fine-tune learning rate (Adam)."
    assert help_of(CompressConfig, "data").startswith(".npz/image directory path or a Dataset for fine-tuning")
    assert help_of(CompressConfig, "no_such_field") is None
