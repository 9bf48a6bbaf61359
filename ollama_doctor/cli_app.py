"""The typer application, its exit codes and the usage error every command raises. The
commands register themselves on ``app`` from ``cli_check``, ``cli_offline`` and ``cli_serve``;
``cli`` imports them all and holds ``main``."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from ollama_doctor import __version__
from ollama_doctor.cli_help import HelpGroup, examples

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

HELP = """Find out why calls to an Ollama server fail.

`check` runs every probe and prints a ranked diagnosis; `probe NAME` runs one.

Exit codes: 0 = no error-level cause (warnings allowed); 1 = an error-level cause was found or
a probe crashed (--strict: warnings too); 2 = bad usage or input.
"""


app = typer.Typer(
    cls=HelpGroup, help=HELP, add_completion=True, invoke_without_command=True,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        ("why do my calls fail? every probe, then a ranked diagnosis",
         "ollama-doctor check -m llama3.2"),
        ("start from the error your app printed",
         "ollama-doctor check --error-file traceback.txt"),
        ("what a status or a cause means, offline", "ollama-doctor explain 502"),
        ("tab completion for your shell (bash, zsh, fish, PowerShell)",
         "ollama-doctor --install-completion")))


class UsageProblem(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def fail_usage(message: str) -> NoReturn:
    raise UsageProblem(message)


def _version(value: bool) -> None:
    if value:
        print(f"ollama-doctor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Find out why calls to an Ollama server fail."""
    if ctx.invoked_subcommand is None:  # no arguments: the help, and success (as gh, uv)
        print(ctx.get_help())
        raise typer.Exit(EXIT_OK)
