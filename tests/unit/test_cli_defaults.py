"""One source of truth for defaults: every CLI option defaults to the config field it feeds.

The mapping is declared once, on the options (:func:`tfdeploy.cli.options.config_option` names the
config and the field; the command receives the value under the field's name). These tests walk
every click command and check:

* each config option's default, parsed as the command parses it, is the field's default;
* an option whose name is a field of a config its command feeds is declared as a config option
  (so a new ``--foo`` for ``CompressConfig.foo`` cannot hard-code its own default);
* every field with a default is on the command line or listed in ``LIBRARY_ONLY`` below (so a new
  field is a decision, not an accident);
* and, end to end, each command run with only its required arguments hands the library exactly
  the config's defaults.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli_stubs import COMMANDS, main, stub_library
from tfdeploy.cli.context import GlobalOptions
from tfdeploy.cli.options import ConfigOption, default_of, defaults_of
from tfdeploy.compression import AutoConfig, CompressConfig
from tfdeploy.measure import BenchConfig, check_determinism, check_parity
from tfdeploy.model.examples import prepare_example
from tfdeploy.pipeline import DeployConfig
from tfdeploy.serving import ExportConfig, ServedModel, ServingConfig, verify, write_warmup

# The library functions some commands call, as they are before the tests below replace them.
LIBRARY_FUNCTIONS = {f.__name__: f for f in (verify, write_warmup, check_determinism, check_parity, prepare_example)}

# Fields with a default that no option sets, per config (its class or function name), and why.
LIBRARY_ONLY: dict[str, set[str]] = {
    "GlobalOptions": {"console"},                                   # the terminal, set while a command runs
    # measurement details (the group's --seed seeds the frameworks, not these samples)
    "CompressConfig": {"latency_repeats", "seed", "progress"},
    "AutoConfig": {"candidates"},                                   # the search space, a library concern
    "ExportConfig": {"progress"},
    "ServedModel": set(),
    "ServingConfig": {"max_enqueued_batches", "warmup_threads", "monitoring_path"},
    "BenchConfig": {"seed", "progress"},
    "DeployConfig": {"warmup_batch_sizes", "progress",
                     # set from the group's options (tfdeploy.cli.deploy.global_settings)
                     "seed", "deterministic", "gpu_memory_growth", "gpu_memory_limit_mb"},
    "prepare_example": {"progress"},
    "write_warmup": {"model_name"},
    "verify": {"progress"},
    "check_determinism": {"seed"},
    "check_parity": {"seed"},
}


def config_options(command: click.Command) -> list[ConfigOption]:
    return [p for p in command.params if isinstance(p, ConfigOption)]


def sources(command: click.Command) -> set[Any]:
    return {p.source for p in config_options(command)}


def same(value: Any, default: Any) -> bool:
    """Equal, and of the same type, as the library sees it: a list and a tuple of the same items, a path and its
    string, an int for a float (but "float32" is not IoDtype.FLOAT32)."""
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return len(value) == len(default) and all(same(v, d) for v, d in zip(value, default))
    if isinstance(value, dict) and isinstance(default, dict):
        return value.keys() == default.keys() and all(same(value[k], default[k]) for k in value)
    if isinstance(value, Path) or isinstance(default, Path):
        return str(value) == str(default)
    if type(default) is float and type(value) is int:
        value = float(value)
    return type(value) is type(default) and value == default


CONFIG_PARAMS = [pytest.param(command, param, id=f"{path} {param.opts[0]}")
                 for path, command in COMMANDS.items() for param in config_options(command)]


@pytest.mark.parametrize("command,param", CONFIG_PARAMS)
def test_option_default_is_the_field_default(command, param):
    ctx = click.Context(command)
    value = param.process_value(ctx, param.get_default(ctx))  # the type and callback, as on a real command line
    if param.to_config is not None:
        value = param.to_config(value)
    expected = default_of(param.source, param.field)
    assert same(value, expected), f"{param.opts[0]} -> {value!r}, {param.source.__name__}.{param.field} = {expected!r}"
    if isinstance(expected, enum.Enum):
        assert list(param.type.choices) == [member.value for member in type(expected)]


@pytest.mark.parametrize("command,param", CONFIG_PARAMS)
def test_option_reaches_the_command_under_the_field_name(command, param):
    assert param.name == param.field or param.to_config is not None or isinstance(param.field, tuple), (
        f"{param.opts[0]} feeds {param.field} but the command receives {param.name}: name it after the field, "
        "or give to_config for the command's conversion")


@pytest.mark.parametrize("path", list(COMMANDS))
def test_options_with_a_field_are_declared_from_the_config(path):
    command = COMMANDS[path]
    fields = {name for source in sources(command) for name in defaults_of(source)}
    plain = [p.opts[0] for p in command.params
             if isinstance(p, click.Option) and not isinstance(p, ConfigOption) and p.name in fields]
    assert not plain, f"{path}: {plain} set config fields; declare them with tfdeploy.cli.options.config_option"


@pytest.mark.parametrize("path", list(COMMANDS))
def test_every_field_is_on_the_command_line_or_library_only(path):
    command = COMMANDS[path]
    for source in sources(command):
        covered = {p.name for p in command.params if isinstance(p, click.Argument)}
        for param in config_options(command):
            if param.source is source:
                covered.update(param.field if isinstance(param.field, tuple) else (param.field,))
        library_only = LIBRARY_ONLY[source.__name__]
        missing = set(defaults_of(source)) - covered - library_only
        assert not missing, (f"{path}: {source.__name__} fields {sorted(missing)} have no option: add one with "
                             "config_option(...) or list them in LIBRARY_ONLY")
        assert not library_only & covered, f"{path}: {sorted(library_only & covered)} have an option now"


def test_every_command_feeds_a_config():
    without = [path for path, command in COMMANDS.items()
               if not isinstance(command, click.Group) and not sources(command)]
    assert without == ["tfdeploy env"]
    assert sources(main) == {GlobalOptions}


# --------------------------------------------------------------------------------------------------
# end to end: the config each command builds from its defaults


@pytest.fixture
def library(monkeypatch):
    return stub_library(monkeypatch)


def assert_defaults(config: Any, cls: type, skip: set[str] = frozenset({"progress"})) -> None:
    for name, _ in defaults_of(cls).items():
        if name not in skip:
            value = getattr(config, name)
            assert same(value, default_of(cls, name)), f"{cls.__name__}.{name}: {value!r}"


def assert_default_kwargs(kwargs: dict[str, Any], func: Any) -> None:
    for name, value in kwargs.items():
        if name != "progress" and name in defaults_of(func):
            assert same(value, default_of(func, name)), f"{func.__name__}({name}={value!r})"


def run(*argv: str) -> None:
    result = CliRunner().invoke(main, list(argv))
    assert result.exit_code == 0, (result.output, result.exception)


CONFIG_CASES = [
    (["compress", "m.keras", "--out", "o"], "compress", CompressConfig),
    (["compress", "m.keras", "--out", "o", "--auto"], "auto_compress", AutoConfig),
    (["export", "m.keras", "--base-dir", "models/m"], "export", ExportConfig),
    (["bench", "a.tflite"], "bench", BenchConfig),
    (["deploy", "--out", "o"], "deploy", DeployConfig),
]


@pytest.mark.parametrize("argv,call,cls", CONFIG_CASES, ids=[" ".join(c[0][:1] + c[0][-1:]) for c in CONFIG_CASES])
def test_a_command_without_options_passes_the_config_defaults(library, argv, call, cls):
    run(*argv)
    (config,), _ = library[call]
    assert isinstance(config, cls)
    assert_defaults(config, cls)
    if cls is AutoConfig:
        assert_defaults(config.compress, CompressConfig)


def test_serving_config_without_options_passes_the_defaults(library):
    run("serving-config", "--model", "m=models/m", "--out", "o")
    (config,), _ = library["write_serving_config"]
    assert_defaults(config, ServingConfig)
    assert_defaults(config.models[0], ServedModel)


FUNCTION_CASES = [
    (["verify", "models/m/1"], "verify"),
    (["warmup", "write", "models/m/1"], "write_warmup"),
    (["check", "determinism", "a.tflite"], "check_determinism"),
    (["check", "parity", "m.keras", "a.tflite"], "check_parity"),
    (["example"], "prepare_example"),
]


@pytest.mark.parametrize("argv,call", FUNCTION_CASES, ids=[c[1] for c in FUNCTION_CASES])
def test_a_command_without_options_passes_the_function_defaults(library, argv, call):
    run(*argv)
    _, kwargs = library[call]
    assert_default_kwargs(kwargs, LIBRARY_FUNCTIONS[call])
