from tfdeploy.cli.commands import main  # noqa: F401
