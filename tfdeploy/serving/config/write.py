"""Writing the serving directory: every registered file, published in one step.

Example:
    >>> report = write_serving_config(ServingConfig([ServedModel("m", "models/m")], "serving"))   # doctest: +SKIP
    >>> report.files[:2]                # doctest: +SKIP
    ['Dockerfile', 'README.md']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfdeploy import faults
from tfdeploy.errors import TfdeployError
from tfdeploy.files import staged_directory
from tfdeploy.report import Block, Report, Table, Text
from tfdeploy.serving.config.options import ServingConfig
from tfdeploy.serving.config.memory import memory_warnings, serving_need
from tfdeploy.serving.memory import size_text
from tfdeploy.serving.config import kserve, registry


@dataclasses.dataclass
class ServingConfigReport(Report):
    """Files written by :func:`write_serving_config`.

    Attributes:
        out_dir: The directory written.
        files: Its files, sorted.
        models: The served models' names.
        flags: ``run.sh``'s ``tensorflow_model_server`` flags.
        warnings: What has to be done before a deployment path works as generated, e.g. a local
            ``storageUri`` that KServe cannot copy (also written as comments in ``kserve.yaml``).

    Example:
        >>> print(ServingConfigReport("s", ["run.sh"], ["m"], ["--port=8500"], ["kserve.yaml: upload m"]))
        out_dir  s
        files    run.sh
        models   m
        flags    --port=8500
        warning: kserve.yaml: upload m
    """

    out_dir: str
    files: list[str]
    models: list[str]
    flags: list[str]
    warnings: list[str] = dataclasses.field(default_factory=list)
    memory: dict[str, int] = dataclasses.field(default_factory=dict)

    def rows(self) -> list[tuple[str, object]]:
        """The key/value table: everything but the warnings."""
        rows = [("out_dir", self.out_dir), ("files", self.files), ("models", self.models), ("flags", self.flags)]
        if self.memory:
            m = self.memory
            rows.append(("memory", f"serving {size_text(m['serving_bytes'])}; a hot update adds "
                                   f"{size_text(m['swap_bytes'])} (two versions resident): {size_text(m['total_bytes'])}"))
        return rows

    def blocks(self) -> list[Block]:
        """The table, then one ``warning: ...`` line per warning."""
        return [Table(self.rows()), *(Text(f"warning: {warning}") for warning in self.warnings)]


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TfdeployError(f"--out must be a directory, but a file is there; choose another path or remove the file. "
                            f"Received: out_dir={str(out)!r}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TfdeployError(f"The output directory is not empty; pass --overwrite. Received: out_dir={str(out)!r}")


@faults.boundary("serving-config", where="out_dir")
def write_serving_config(config: ServingConfig) -> ServingConfigReport:
    """Writes the TF Serving configuration directory (atomically): every file of the registry.

    Every file is built (protobuf text parsed back against its schema) before anything is
    written; the directory then appears in one rename (:func:`tfdeploy.files.staged_directory`).

    Args:
        config: A :class:`ServingConfig`.

    Returns:
        A :class:`ServingConfigReport`, with :attr:`~ServingConfigReport.warnings` for what a
        deployment path needs first (a local ``storageUri`` for KServe, ...).

    Raises:
        TfdeployError: For invalid options (names the field) or an existing ``out_dir``
            without ``overwrite``.

    Example:
        >>> write_serving_config(ServingConfig([ServedModel("m", "models/m")], "serving")).files  # doctest: +SKIP
        ['Dockerfile', 'README.md', 'batching_parameters.txt', ...]
    """
    config.validate()
    out = Path(config.out_dir)
    _check_out_dir(out, config.overwrite)
    contents = {file.name: file.render(config) for file in registry.SERVING_FILES}
    with staged_directory(out, overwrite=True) as publication:
        for file in registry.SERVING_FILES:
            target = publication.staging / file.name
            target.write_text(contents[file.name])
            if file.executable:
                target.chmod(0o755)
    need = serving_need(config)
    return ServingConfigReport(out_dir=str(out), files=sorted(contents), models=[m.name for m in config.models],
                               flags=registry.server_flags(config),
                               warnings=[*memory_warnings(config, need), *kserve.kserve_warnings(config)],
                               memory={"serving_bytes": need.serving_bytes, "swap_bytes": need.swap_bytes,
                                       "total_bytes": need.total_bytes})
