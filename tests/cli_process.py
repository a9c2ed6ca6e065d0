"""Running ``tfdeploy`` as a user does: a real process with real stdout and stderr file descriptors."""

import re
import subprocess
import sys
from pathlib import Path

# A glog/absl line (I1124 12:00:00.000000 ... or I0000 00:00:...), absl's preamble, the converter's summary.
TF_NATIVE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|fully_quantize: \d|cuInit", re.MULTILINE)


def tfdeploy(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Runs the installed ``tfdeploy`` script (or ``python -m tfdeploy.cli``) and captures its output."""
    script = Path(sys.executable).with_name("tfdeploy")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tfdeploy.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout, check=False)
