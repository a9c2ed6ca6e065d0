"""The one exception type tfdeploy raises for problems a user can fix."""


class TfdeployError(Exception):
    """A problem with the user's input, files or environment.

    The message names the file, layer or field at fault and says what to do. The CLI
    prints it on one line and exits with code 2.

    Example:
        >>> raise TfdeployError("No model file. Received: path='m.keras'")
        Traceback (most recent call last):
        ...
        tfdeploy.errors.TfdeployError: No model file. Received: path='m.keras'
    """
