"""Plug-in commands (sgmine.commands): whatever an installed package declares in the
``sgmine.commands`` entry-point group becomes ``sgmine <name>``; the project's own plug-in
commands say how to install the plug-in when it is missing; ``sgmine --help`` stays light."""

import subprocess
import sys
import types
from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from sgmine import commands
from sgmine.cli import app

runner = CliRunner()


def _declare(monkeypatch, **targets):
    """Pretend that installed packages declare these ``name = "module:attr"`` entry points."""
    found = {name: EntryPoint(name, value, commands.ENTRY_POINT_GROUP) for name, value in targets.items()}
    monkeypatch.setattr(commands, "plugin_entry_points", lambda: found)


@pytest.fixture
def fake_plugin(monkeypatch):
    module = types.ModuleType("sgmine_fake_plugin")

    def hello(name: str = typer.Option("world", "--name", help="Whom to greet.")) -> None:
        """Greet someone (a command from a plug-in)."""
        typer.echo(f"hello {name}")
        raise typer.Exit(3)

    module.hello = hello
    monkeypatch.setitem(sys.modules, "sgmine_fake_plugin", module)
    return module


@pytest.mark.parametrize("name", ["refine", "identify"])
def test_a_missing_plugin_says_how_to_install_it(monkeypatch, name):
    _declare(monkeypatch)  # nothing installed
    result = runner.invoke(app, [name, "x.gr", "--cif-dir", "cifs", "--top-k", "3"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"sgmine: error: sgmine {name} needs the sgmine-diffpy plugin: install "
                             "plugins/sgmine-diffpy (pip install ./plugins/sgmine-diffpy)\n")
    listed = runner.invoke(app, ["--help"]).output
    assert "refine" in listed and "identify" in listed and "not available" in listed


def test_any_declared_command_appears_and_runs(monkeypatch, fake_plugin):
    _declare(monkeypatch, hello="sgmine_fake_plugin:hello")
    listed = runner.invoke(app, ["--help"]).output
    assert "hello" in listed and "Greet someone" in listed
    assert listed.index("scan") < listed.index("hello")  # built-in commands first
    assert "--name" in runner.invoke(app, ["hello", "--help"]).output
    result = runner.invoke(app, ["hello", "--name", "Ni"])
    assert result.exit_code == 3 and result.stdout == "hello Ni\n"


def test_a_plugin_cannot_replace_a_builtin_command(monkeypatch, fake_plugin):
    _declare(monkeypatch, scan="sgmine_fake_plugin:hello")
    assert "Score PDFs" in runner.invoke(app, ["scan", "--help"]).output


def test_a_broken_plugin_command_does_not_break_the_others(monkeypatch):
    _declare(monkeypatch, broken="sgmine_no_such_plugin.cli:command")
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["broken", "--anything"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "plugin command broken (sgmine_no_such_plugin.cli:command) cannot be loaded" in result.stderr
    assert result.stderr.count("\n") == 1


def test_help_loads_no_numpy():
    """``sgmine --help`` lists the plug-in commands without importing the plug-ins' work."""
    code = ("import sys; from sgmine.cli import main; sys.argv = ['sgmine', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('numpy' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
    assert "refine" in done.stdout and "identify" in done.stdout


def test_the_cli_needs_no_click_package():
    """typer >= 0.2x vendors click and no longer installs it: a runtime-only install (the
    README's first command) has no ``click`` package, so neither may sgmine's CLI import it."""
    code = ("import sys; sys.modules['click'] = None\n"
            "from sgmine.cli import app\n"
            "from sgmine.commands import unavailable\n"
            "assert unavailable('x', 'why').name == 'x'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
