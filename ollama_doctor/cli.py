"""The command line: wiring only (options → context → run → diagnose → render/export → exit).

Exit codes: 0 no error-level cause (warnings allowed; ``--strict`` fails them too); 1 an
error-level cause was found or a probe crashed; 2 bad usage or input. Heavy modules (httpx,
rich, psutil, dnspython) are imported inside the commands, so ``--help`` stays instant.

The command line is split by what each part does; this module holds the entry point, ``main``:

- ``cli_app``: the typer ``app``, the exit codes, the usage error;
- ``cli_help``: plain-text help with examples, and shell completion;
- ``cli_options``: the options ``check``, ``probe`` and ``watch`` share, and the run's context;
- ``cli_check``: ``check`` and ``probe``; ``cli_serve``: ``watch`` and ``exporter``;
- ``cli_offline``: ``probes``, ``explain``, ``logs``, ``schema``, ``emulate``.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, NoReturn

import typer

# Importing the command modules registers their commands on ``app``, in this order (the order
# of the help's command list).
from ollama_doctor import cli_check, cli_offline, cli_serve
from ollama_doctor.cli_app import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageProblem, app, fail_usage
from ollama_doctor.cli_check import PROBE_OPTIONS
from ollama_doctor.cli_help import _plain_help, examples

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "PROBE_OPTIONS", "UsageProblem", "_plain_help",
           "app", "cli_check", "cli_offline", "cli_serve", "examples", "fail_usage", "main"]

# typer ≥ 0.20 vendors click privately; find its exception base through a public class so that
# both the old and the new layouts work.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


@functools.cache
def _command(only: str | None = None) -> Any:
    """The click command typer builds from ``app``, once per process and command line shape.

    typer builds every command's options from its signature (~20 options per network
    command), which costs more than some whole runs. For ``ollama-doctor NAME …`` only NAME's
    command is built, in a group that holds it alone (the root's ``--version`` and help still
    work); anything else (the root's own help, an unknown name, shell completion) gets the
    whole group."""
    if only is None:
        return typer.main.get_command(app)
    everything = app.registered_commands
    app.registered_commands = [info for info in everything if _name(info) == only]
    try:
        return typer.main.get_command(app)
    finally:
        app.registered_commands = everything


def _name(info: Any) -> str:
    """A registered command's name, as typer derives it (``get_command_name``)."""
    return str(info.name or info.callback.__name__.lower().replace("_", "-"))


def _invoked(args: list[str]) -> str | None:
    """The command a command line runs, when that alone needs building (see ``_command``)."""
    if not args or "_OLLAMA_DOCTOR_COMPLETE" in os.environ:
        return None
    names = {_name(info) for info in app.registered_commands}
    return args[0] if args[0] in names else None


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 instead of tracebacks or usage boxes.

    Ctrl-C ends the run at once with exit 130 and one line (no report file is left: reports
    are written atomically). A closed pipe (``| head``) ends quietly; any other failure to
    write the output (``ENOSPC``) is one line on stderr and exit 2. The process never waits
    for a probe thread stuck in a read: the runner has already given up on it.
    """
    from ollama_doctor import _exit as exit_state
    from ollama_doctor._exit import exit_process

    def quiet_stdout() -> None:
        # As Python's documentation advises for SIGPIPE: point stdout at /dev/null so that
        # the flush at exit cannot raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def interrupted() -> NoReturn:
        try:
            sys.stderr.write("ollama-doctor: interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        quiet_stdout()
        if exit_state.IN_PROCESS:  # run inside another process: leave only the command
            raise SystemExit(130)
        os._exit(130)  # now: not after the threads of a cut probe

    command = _command(_invoked(sys.argv[1:] if argv is None else argv))
    code: Any = EXIT_OK
    try:
        code = command.main(args=argv, prog_name="ollama-doctor", standalone_mode=False)
        if code == 130:  # typer turns KeyboardInterrupt into Exit(130)
            interrupted()
        sys.stdout.flush()  # where a full disk or a closed pipe shows up
    except UsageProblem as exc:
        _die(str(exc))
    except typer.Exit as exc:
        code = exc.exit_code
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            quiet_stdout()
            exit_process(EXIT_FAIL)
        except OSError as err:
            _die(f"cannot write the output: {err.strerror or err}")
    except _CLICK_ERROR as exc:
        _die(_with_value(exc.format_message(), exc,  # type: ignore[attr-defined]
                         sys.argv[1:] if argv is None else argv))
    except (typer.Abort, KeyboardInterrupt):
        interrupted()
    except BrokenPipeError:
        quiet_stdout()
        exit_process(EXIT_FAIL)
    except OSError as exc:  # writing the output failed (a full disk, /dev/full, EIO)
        where = f" {exc.filename!r}" if exc.filename else " the output"
        _die(f"cannot write{where}: {exc.strerror or exc}")
    exit_process(code if isinstance(code, int) else EXIT_OK)


def _with_value(message: str, exc: Exception, argv: list[str]) -> str:
    """Name the value the user gave when typer's message does not (``--timeout abc``)."""
    param = getattr(exc, "param", None)
    for opt in getattr(param, "opts", None) or []:
        for i, arg in enumerate(argv):
            value = None
            if arg == opt and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
            if value is not None and repr(value) not in message:
                return f"{message.rstrip('.')} (got {value!r})"
    return message


def _die(message: str) -> NoReturn:
    from ollama_doctor.redact import redact_text
    from ollama_doctor.runner import exit_process
    from ollama_doctor.sanitize import clean

    try:
        sys.stderr.write(f"ollama-doctor: error: {clean(redact_text(message))}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:
        sys.stdout.flush()  # what was printed before the error still goes out
    except (OSError, ValueError):  # a failing stdout must not raise again at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
    exit_process(EXIT_USAGE)
