import subprocess
import sys

from click.testing import CliRunner

from tfdeploy import __version__
from tfdeploy.cli import main
from tfdeploy.compression.recipes import Recipe


def test_help_and_version_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tfdeploy.cli import main\n"
        "r = CliRunner()\n"
        "outs = [r.invoke(main, ['--help']), r.invoke(main, ['--version'])]\n"
        "outs += [r.invoke(main, [name, '--help']) for name in main.commands]\n"
        "assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'tensorflow_model_optimization'))\n"
        "print(len(heavy), heavy[:5])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("0 []"), result.stdout


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_recipe_choices_come_from_the_enum():
    (option,) = [p for p in main.commands["compress"].params if p.name == "recipes"]
    assert ": " + ", ".join(Recipe.choices()) + "; chain them with +" in option.help
    result = CliRunner().invoke(main, ["compress", "--help"])
    assert "--recipe" in result.output and "--int8-granularity" in result.output


def test_unknown_recipe_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["compress", str(tmp_path / "m.keras"), "--out", str(tmp_path), "--recipe", "zip"])
    assert result.exit_code == 2
    assert "Unknown recipe 'zip'" in result.output


def test_library_error_is_one_line_and_exit_2(tmp_path, monkeypatch):
    from tfdeploy.cli.commands import GlobalOptions

    monkeypatch.setattr(GlobalOptions, "apply", lambda self: None)
    missing = tmp_path / "missing.keras"
    result = CliRunner().invoke(main, ["compress", str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"Error: No model at this path. Received: path='{missing}'"
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(tmp_path, monkeypatch):
    from tfdeploy.cli.commands import GlobalOptions
    from tfdeploy.errors import TfdeployError

    monkeypatch.setattr(GlobalOptions, "apply", lambda self: None)
    result = CliRunner().invoke(main, ["--debug", "compress", str(tmp_path / "m.keras"), "--out", str(tmp_path)])
    assert isinstance(result.exception, TfdeployError)


def test_global_options_reach_the_commands(monkeypatch, tmp_path):
    from tfdeploy.cli.commands import GlobalOptions

    seen = []
    monkeypatch.setattr(GlobalOptions, "apply", lambda self: seen.append(self))
    CliRunner().invoke(main, ["--no-gpu-memory-growth", "--gpu-memory-limit", "512", "--seed", "7",
                              "--deterministic", "compress", str(tmp_path / "m.keras"), "--out", str(tmp_path)])
    assert seen == [GlobalOptions(debug=False, gpu_memory_growth=False, gpu_memory_limit=512, seed=7, deterministic=True)]
