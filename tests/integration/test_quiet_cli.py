"""The CLI run as a user runs it (a real process, real stderr): no TensorFlow C++ log lines unless --debug.

TensorFlow writes oneDNN notices, ``failed call to cuInit`` (on every machine without a GPU), absl's
``WARNING: All log messages before absl::InitializeLog()`` and the converter's ``fully_quantize: 0, ...``
straight to file descriptors 1 and 2. The CLI keeps them in ``OUT/logs/tfdeploy.log``.
"""

import os
import subprocess
import sys
from pathlib import Path

from cli_process import TF_NATIVE_LINE, tfdeploy


def test_compress_keeps_tensorflow_logs_out_of_the_terminal(compress_inputs, tmp_path):
    out = tmp_path / "out"
    result = tfdeploy("compress", str(compress_inputs["keras3"]), "--out", str(out), "--recipe", "ptq-int8",
                      "--data", str(compress_inputs["data"]))
    assert result.returncode == 0, result.stderr
    assert not TF_NATIVE_LINE.search(result.stderr), result.stderr
    assert not TF_NATIVE_LINE.search(result.stdout), result.stdout
    assert "converting to TFLite (int8)" in result.stderr  # progress still reaches the user
    assert "ptq-int8" in result.stdout and "plot: " in result.stdout
    log = (out / "logs" / "tfdeploy.log").read_text()
    assert TF_NATIVE_LINE.search(log), "TensorFlow's lines are kept in the run's log"


def test_debug_shows_tensorflow_logs_and_quiet_shows_nothing_but_the_report(compress_inputs, tmp_path):
    debug = tfdeploy("--debug", "compress", str(compress_inputs["keras3"]), "--out", str(tmp_path / "d"),
                     "--recipe", "ptq-dynamic")
    assert debug.returncode == 0, debug.stderr
    assert TF_NATIVE_LINE.search(debug.stderr), "with --debug, TensorFlow's own lines are shown"
    quiet = tfdeploy("--quiet", "compress", str(compress_inputs["keras3"]), "--out", str(tmp_path / "q"),
                     "--recipe", "ptq-dynamic")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "ptq-dynamic" in quiet.stdout


def test_a_failure_is_one_line_naming_the_cause_and_the_log(tmp_path):
    result = tfdeploy("compress", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Loading ")]
    assert lines[0] == f"Error: No model at this path. Received: path='{tmp_path / 'missing.keras'}'"
    assert lines[1].startswith("TensorFlow's log: ") and Path(lines[1].split(": ", 1)[1]).is_file()
    assert not TF_NATIVE_LINE.search(result.stderr)


def test_importing_tfdeploy_leaves_tensorflow_logging_alone():
    """In a notebook or script, ``import tfdeploy`` must not silence the user's TensorFlow."""
    code = "import os, tfdeploy.backend as b; b.tf(); print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.stdout.strip() == "None"
    assert TF_NATIVE_LINE.search(result.stderr), "TensorFlow's own start-up lines are the user's to see"
