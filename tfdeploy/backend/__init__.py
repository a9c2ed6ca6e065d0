from tfdeploy.backend.modules import *  # noqa: F401,F403  (temporary facade)
from tfdeploy.backend.modules import _shape  # noqa: F401
