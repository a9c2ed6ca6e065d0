# Temporary: removed once the CLI imports through tfdeploy.compression.
from tfdeploy.compression.auto import Objective  # noqa: F401
from tfdeploy.compression.recipes import Recipe  # noqa: F401
from tfdeploy.compression.tflite import Int8Granularity, IoDtype  # noqa: F401
