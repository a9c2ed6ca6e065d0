"""What every command shares at run time: the global options and the one-library-call boundary.

A command parses its options, builds a config, makes one library call inside
:func:`library_command` and prints the report with :func:`echo_report`. A
:class:`~tfdeploy.errors.TfdeployError` becomes one line on stderr and exit code 2 (``--debug``
shows the traceback). TensorFlow's own C++ output goes to a log file (:mod:`tfdeploy.console`),
kept as ``OUT/logs/tfdeploy.log`` by commands with ``--out``; ``--debug`` shows it instead.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import traceback
from typing import Any, Callable

import click

from tfdeploy.console import Console, capture_native_output
from tfdeploy.errors import TfdeployError
from tfdeploy.measure.processes import ONEDNN_ENV
from tfdeploy.progress import Progress, auto_progress


@dataclasses.dataclass
class GlobalOptions:
    """Options of the ``tfdeploy`` group, applied before any model is touched.

    Attributes:
        debug: Show tracebacks, setup details and TensorFlow's own log lines.
        quiet: No progress; only the report and errors.
        gpu_memory_growth: Allocate GPU memory as needed (all GPUs).
        gpu_memory_limit: Cap each GPU at MB megabytes (replaces memory growth).
        seed: Seed Python, NumPy, TF and both Kerases.
        deterministic: Enable TensorFlow op determinism.
        onednn: TensorFlow's oneDNN CPU kernels (``--no-onednn`` sets ``TF_ENABLE_ONEDNN_OPTS=0`` before
            TensorFlow is imported, for this process and every process it starts: the usual fix when TF
            crashes natively on a model).
        console: The user's terminal (stderr) while a command runs.
    """

    debug: bool = False
    quiet: bool = False
    gpu_memory_growth: bool = True
    gpu_memory_limit: int | None = None
    seed: int | None = None
    deterministic: bool = False
    onednn: bool = True
    console: Console = dataclasses.field(default_factory=lambda: Console(sys.stderr), compare=False, repr=False)

    def progress(self) -> Progress:
        """Where library calls report progress: nothing with --quiet, else tqdm on the user's terminal."""
        return Progress() if self.quiet else auto_progress(self.console.stream)

    def apply(self) -> None:
        """Configures oneDNN, GPUs, seeds and op determinism (imports TensorFlow)."""
        from tfdeploy import runtime

        if not self.onednn:
            os.environ[ONEDNN_ENV] = "0"  # read once, when TensorFlow is imported (just below)
        gpu = runtime.configure_gpus(self.gpu_memory_growth, self.gpu_memory_limit)
        if self.debug:
            self.console.say(gpu.message)
        if self.seed is not None:
            runtime.seed_everything(self.seed, deterministic_ops=self.deterministic)
        elif self.deterministic:
            from tfdeploy import backend

            backend.tf().config.experimental.enable_op_determinism()


def global_options() -> GlobalOptions:
    """The running command's global options."""
    return click.get_current_context().find_object(GlobalOptions) or GlobalOptions()


def progress() -> Progress:
    """Progress for the running command's library call (stderr, so that stdout stays the report)."""
    return global_options().progress()


def say(message: str) -> None:
    """A line to the user on stderr (never into the captured TensorFlow log)."""
    global_options().console.say(message)


def echo_report(report: Any, as_json: bool = False) -> None:
    """Prints a library report on stdout: its table, or its JSON with ``--json``."""
    click.echo(report.to_json() if as_json else report.to_table())


def library_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Applies the global options and runs the command with TensorFlow's output captured.

    A TfdeployError becomes ``Error: ...`` and exit code 2; a usage error found while building the
    config (:class:`click.UsageError`) is click's usage message and exit code 2; any other
    exception one line naming it and exit code 1, its traceback in the log. The log is kept in
    ``--out``'s ``logs/`` when the command has one; otherwise it is deleted after success and
    named after a failure.
    """

    @functools.wraps(func)
    @click.pass_obj
    def wrapper(options: GlobalOptions, *args: Any, **kwargs: Any) -> Any:
        code, usage_error = 0, False
        with capture_native_output(enabled=not options.debug) as console:
            options.console = console
            try:
                options.apply()
                return func(*args, **kwargs)
            except click.ClickException:
                usage_error = True
                raise
            except TfdeployError as exc:
                if options.debug:
                    raise
                console.say(f"Error: {exc}")
                code = 2
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:
                if options.debug:
                    raise
                traceback.print_exc()  # into the log
                first = (str(exc).strip().splitlines() or [""])[0]
                console.say(f"Error: unexpected {type(exc).__name__}: {first} (a tfdeploy bug: please report it with "
                            "the log below; --debug shows the traceback)")
                code = 1
            finally:
                failed = not usage_error and (code != 0 or sys.exc_info()[0] is not None)
                console.finish(kwargs.get("out_dir"), failed=failed)
        sys.exit(code)

    return wrapper
