"""The CLI without the library: every command, and stand-ins for the library calls they make."""

from __future__ import annotations

import sys
from typing import Any, Iterator

import click

from tfdeploy.cli import main
from tfdeploy.cli.context import GlobalOptions


def walk(group: click.Group = main, path: tuple[str, ...] = ("tfdeploy",)) -> Iterator[tuple[str, click.Command]]:
    """Every command and group under ``group`` (itself included), with its command line."""
    yield " ".join(path), group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


COMMANDS = dict(walk())


class StubReport:
    """What the stand-ins return: a report that passed."""

    failed, passed, identical = False, True, True

    def to_table(self) -> str:
        return "table"

    def to_json(self) -> str:
        return "{}"


def stub_library(monkeypatch: Any) -> dict[str, tuple[tuple, dict]]:
    """Replaces every library call the CLI makes (where the CLI looks it up) and GlobalOptions.apply.

    Returns:
        Library function name -> the (args, kwargs) of its last call.
    """
    import tfdeploy.compression
    import tfdeploy.measure
    import tfdeploy.pipeline
    import tfdeploy.serving
    import tfdeploy.serving.export
    from tfdeploy.model import examples

    calls: dict[str, tuple[tuple, dict]] = {}
    monkeypatch.setattr(GlobalOptions, "apply", lambda self: None)
    for module, name in [(tfdeploy.compression, "compress"), (tfdeploy.compression, "auto_compress"),
                         (sys.modules["tfdeploy.serving.export"], "export"), (tfdeploy.serving, "write_warmup"),
                         (tfdeploy.serving, "verify"), (tfdeploy.serving, "write_serving_config"),
                         (tfdeploy.measure, "bench"), (tfdeploy.measure, "check_determinism"),
                         (tfdeploy.measure, "check_parity"), (tfdeploy.pipeline, "deploy"),
                         (examples, "prepare_example")]:
        monkeypatch.setattr(module, name, _recorder(calls, name))
    return calls


def _recorder(calls: dict[str, tuple[tuple, dict]], name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> StubReport:
        calls[name] = (args, kwargs)
        return StubReport()

    return call
