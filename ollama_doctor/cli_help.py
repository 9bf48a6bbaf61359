"""Help and shell completion for the command line: plain-text help whose examples print whole
at every width, and the candidates the shell's tab completion offers. Standard library and
typer only: ``--help`` imports this."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
import typer.core


def examples(*pairs: tuple[str, str]) -> str:
    """An "Examples:" epilog, each example a ``# why`` line over the command to paste. Click
    reflows help paragraphs, except one whose first line is ``\\b`` (click.formatting.wrap_text):
    commands are printed whole, as written, at every terminal width."""
    lines = "\n".join(f"  # {why}\n  {command}" for why, command in pairs)
    return f"\b\nExamples:\n{lines}"


@contextlib.contextmanager
def _plain_help() -> Iterator[None]:
    """Format help as plain text that wraps between words only.

    - typer escapes the ``[`` of ``[default: 5]`` for rich markup whenever rich is installed,
      even with ``rich_markup_mode=None`` (typer/core.py, ``TyperOption.get_help_record``,
      0.12-0.19): the help would read ``\\[default: 5]`` and ``--help`` would import rich.
      typer reads its ``HAS_RICH`` flag at call time: it is lowered while help is formatted.
    - click wraps with ``textwrap``'s default ``break_on_hyphens``, which splits option names
      (``--client-`` / ``timeout``): its wrapper, looked up at each call of
      ``click.formatting.wrap_text``, keeps hyphenated words whole meanwhile.
    """
    patches: list[tuple[Any, str, Any]] = [(typer.core, "HAS_RICH", False)]
    try:
        import click._textwrap as click_textwrap

        class WholeWords(click_textwrap.TextWrapper):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, "break_on_hyphens": False})

        patches.append((click_textwrap, "TextWrapper", WholeWords))
    except (ImportError, AttributeError):  # another click layout: hyphens may split
        pass
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches
             if hasattr(module, name)]
    try:
        for module, name, value in patches:
            if hasattr(module, name):
                setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


class HelpCommand(typer.core.TyperCommand):
    """A command whose help is plain text (see ``_plain_help``) and shows what its arguments
    are (see ``_argument_help``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _argument_help(self)

    def format_arguments(self, ctx: Any, formatter: Any) -> None:
        """Nothing: typer's ``format_options`` lists the arguments already (click ≥ 8.5 would
        list them a second time, as "Positional arguments")."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _plain_help():
            super().format_help(ctx, formatter)


def _argument_help(command: Any) -> None:
    """Give each argument back the help typer was given for it. click ≥ 8.3 takes ``help`` in
    ``Argument.__init__`` and so resets the one typer sets just before calling it
    (typer/core.py, ``TyperArgument.__init__``, 0.19): ``Arguments:`` would list bare names."""
    import typing

    import click

    missing = [p for p in command.params if isinstance(p, click.Argument) and not p.help]
    if not missing or command.callback is None:
        return
    hints = typing.get_type_hints(command.callback, include_extras=True)
    for param in missing:
        for meta in getattr(hints.get(param.name), "__metadata__", ()):
            if isinstance(getattr(meta, "help", None), str):
                param.help = meta.help


class HelpGroup(typer.core.TyperGroup):
    """The command group, with plain-text help (see ``_plain_help``)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _plain_help():
            super().format_help(ctx, formatter)


# ---------------------------------------------------------------------------------------------
# Shell completion (`ollama-doctor --install-completion`): each function gets what the user has
# typed of the value so far and returns (value, one-line help) pairs. They import what they list
# only when the shell asks, so no command pays for them.

Candidates = list[tuple[str, str]]


def complete_probe(incomplete: str) -> Candidates:
    """Probe names, for ``probe NAME``."""
    from ollama_doctor.registry import REGISTRY

    return [(s.id, s.title + (" (opt-in)" if s.opt_in else "")) for s in REGISTRY
            if s.id.startswith(incomplete)]


def complete_probe_list(incomplete: str) -> Candidates:
    """``--probes a,b,c``: the names not given yet, after the ones typed so far."""
    from ollama_doctor.registry import REGISTRY

    done, _, last = incomplete.rpartition(",")
    given = set(done.split(","))
    prefix = done + "," if done else ""
    return [(prefix + s.id, s.title) for s in REGISTRY
            if s.id.startswith(last) and s.id not in given]


def complete_topic(incomplete: str) -> Candidates:
    """``explain TOPIC``: the documented HTTP codes, the cause ids, and ``retry``."""
    from ollama_doctor.causes import CATALOGUE, CODES

    topics = [(str(row.code), row.name) for row in CODES]
    topics += [(c.id, c.title) for c in CATALOGUE]
    topics.append(("retry", "the recommended retry policy"))
    return [(value, text) for value, text in topics if value.startswith(incomplete.lower())]


def complete_client(incomplete: str) -> Candidates:
    """``--client``: the client families (``probes`` lists their rules)."""
    from ollama_doctor.clients import CLIENTS

    return [(c.name, c.label) for c in CLIENTS if c.name.startswith(incomplete.lower())]


def complete_capability(incomplete: str) -> Candidates:
    """``--needs``: the capability names Ollama's /api/show reports."""
    from ollama_doctor.probes.models import CAPABILITIES

    return [(cap, "") for cap in CAPABILITIES if cap.startswith(incomplete.lower())]


def complete_load_call(incomplete: str) -> Candidates:
    """``--load-call``: what the load probe can send (probes/load.py, ``START_RATE``)."""
    calls = [("version", "GET /api/version: finds a gateway's rate limit"),
             ("generate", "POST /api/generate: fills the model's queue (needs -m)")]
    return [c for c in calls if c[0].startswith(incomplete)]


def complete_fault(incomplete: str) -> Candidates:
    """``emulate --fault``: the fault names (``NAME=`` for those that take a value)."""
    from ollama_doctor.emulator import FAULTS

    return [(f.name + ("=" if f.value_help else ""), f.description) for f in FAULTS
            if f.name.startswith(incomplete)]
