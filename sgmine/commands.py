"""Commands from plug-ins: ``sgmine <name>`` for any command an installed package declares.

A package adds a command by declaring an entry point in the group ``sgmine.commands``::

    [project.entry-points."sgmine.commands"]
    refine = "sgmine_diffpy.commands:refine"

The entry point names a function with typer parameters (made into a command the way
``@app.command()`` does: its docstring is the help text) or a ready ``click.Command``. It
should live in a module that imports little, since ``sgmine --help`` loads it to show the
command's one-line help; the work belongs in modules the function imports when it runs.

Nothing is looked up until a command is asked for: the built-in commands, ``scan`` above
all, never read the installed packages' metadata. Commands that the project's own plug-ins
provide (:data:`KNOWN_PLUGINS`) appear in ``sgmine --help`` even while their plug-in is not
installed; running one then says in one line how to install it (exit status 2).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # only for annotations: typer >= 0.2x vendors its own click and no longer installs it
    import click

ENTRY_POINT_GROUP = "sgmine.commands"
#: The exit status of a command that cannot run at all (as ``sgmine``'s usage errors).
EXIT_USAGE = 2

#: Commands of the project's plug-ins, and how to install the plug-in that provides each.
KNOWN_PLUGINS: dict[str, tuple[str, str]] = {
    "refine": ("sgmine-diffpy", "install plugins/sgmine-diffpy (pip install ./plugins/sgmine-diffpy)"),
    "identify": ("sgmine-diffpy", "install plugins/sgmine-diffpy (pip install ./plugins/sgmine-diffpy)"),
}


@lru_cache(maxsize=1)
def plugin_entry_points() -> dict[str, EntryPoint]:
    """The installed ``sgmine.commands`` entry points by command name (the first of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def as_command(name: str, target: Any, context_settings: dict[str, Any] | None = None,
               **command_options: Any) -> click.Command:
    """``target`` (a click command, or a function with typer parameters) as the command ``name``;
    ``command_options`` (``help``, ``short_help``, ...) go to typer's ``command()``.

    A ready command is recognised by its interface (``make_context`` and ``invoke``), not by
    class: typer may use its own copy of click, whose classes are not the ``click`` package's."""
    if callable(getattr(target, "make_context", None)) and callable(getattr(target, "invoke", None)):
        return target
    if not callable(target):
        raise TypeError(f"{target!r} is neither a function nor a click command")
    wrapper = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                          context_settings=context_settings or {})
    wrapper.command(name=name, **command_options)(target)
    command = typer.main.get_command(wrapper)
    command.name = name
    return command


def unavailable(name: str, message: str) -> click.Command:
    """A stand-in for a command that cannot run: any arguments, one line on stderr, exit 2."""

    def fail() -> None:
        typer.echo(f"sgmine: error: {message}", err=True)
        raise typer.Exit(EXIT_USAGE)

    return as_command(
        name,
        fail,
        {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        help=f"(not available: {message})",
        short_help=f"(not available: {message.split(':')[0]})",
    )


def missing_plugin_message(name: str) -> str:
    """What ``sgmine <name>`` says when the plug-in that provides it is not installed."""
    package, how = KNOWN_PLUGINS[name]
    return f"sgmine {name} needs the {package} plugin: {how}"


def load_command(name: str, entry: EntryPoint, context_settings: dict[str, Any] | None = None) -> click.Command:
    """The command behind ``entry``; a stand-in that says why when it cannot be loaded."""
    try:
        return as_command(name, entry.load(), context_settings)
    except ModuleNotFoundError as exc:
        top = entry.value.split(":")[0].split(".")[0]
        if name in KNOWN_PLUGINS and (exc.name or "").split(".")[0] == top:
            return unavailable(name, missing_plugin_message(name))
        return unavailable(name, f"plugin command {name} ({entry.value}) cannot be loaded: {exc}")
    except Exception as exc:  # a broken plug-in must not break sgmine's other commands
        return unavailable(name, f"plugin command {name} ({entry.value}) cannot be loaded: {exc}")


class PluginGroup(TyperGroup):
    """sgmine's command group: the built-in commands, then those of plug-ins, loaded on demand."""

    _loaded: dict[str, click.Command]

    def _plugin_names(self) -> list[str]:
        known = [n for n in KNOWN_PLUGINS if n not in self.commands]
        return known + sorted(n for n in plugin_entry_points() if n not in self.commands and n not in known)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(super().list_commands(ctx)) + self._plugin_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        loaded = self.__dict__.setdefault("_loaded", {})
        if cmd_name not in loaded:
            entry = plugin_entry_points().get(cmd_name)
            if entry is not None:
                loaded[cmd_name] = load_command(cmd_name, entry, self.context_settings)
            elif cmd_name in KNOWN_PLUGINS:
                loaded[cmd_name] = unavailable(cmd_name, missing_plugin_message(cmd_name))
            else:
                return None
        return loaded[cmd_name]
