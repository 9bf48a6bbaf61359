"""Help that teaches, and shell completion (issue #12).

- Every command's ``-h`` (an alias of ``--help`` everywhere) ends with 2-4 examples, printed
  whole at every width; each example parses with the real command line; metavars say what to
  type (no ``TEXT``/``FLOAT``/``INTEGER``), defaults read ``[default: 5]`` (no rich escape).
- ``ollama-doctor`` alone prints the help and exits 0; the command list is never cut.
- ``probe -h`` lists every probe, one line each, with the options it reads (checked against the
  probes' sources); ``explain --list`` lists every code and cause id.
- Completion runs click's own machinery in-process (the environment the shell script sets:
  ``_OLLAMA_DOCTOR_COMPLETE``, ``COMP_WORDS``, ``COMP_CWORD``) and the candidates are asserted.
- ``logs --log-lines`` and ``emulate -m`` work (the real command line, real emulator socket).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from ollama_doctor import cli as doctor
from ollama_doctor.causes import CATALOGUE, CODES
from ollama_doctor.clients import CLIENTS
from ollama_doctor.registry import REGISTRY
from tests.conftest import CliRun, clean_environ
from tests.test_imports import OFFLINE_FORBIDDEN, assert_budget, trace


def _group() -> click.Group:
    group = typer.main.get_command(doctor.app)
    assert isinstance(group, click.Group)
    return group


GROUP = _group()
COMMANDS = sorted(GROUP.commands)
WIDTHS = (60, 80, 100, 200)


def help_text(*argv: str, width: int = 80) -> str:
    """``ollama-doctor ARGV`` in-process, with a terminal ``width`` columns wide."""
    result = CliRunner().invoke(doctor.app, list(argv), prog_name="ollama-doctor",
                                env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def examples_of(command: click.Command) -> list[str]:
    """The commands of a help's "Examples:" epilog (the lines that are not ``# why``)."""
    epilog = command.epilog or ""
    assert "Examples:" in epilog, f"{command.name}: no examples"
    body = epilog.split("Examples:", 1)[1]
    return [line.strip() for line in body.splitlines()
            if line.strip() and not line.strip().startswith("#")]


ALL = [("", GROUP)] + [(name, GROUP.commands[name]) for name in COMMANDS]


# ---------------------------------------------------------------------------------------------
# help


def test_no_arguments_prints_the_help_and_succeeds(cli: Callable[..., CliRun]) -> None:
    run = cli()
    assert (run.code, run.stderr) == (0, "")
    assert run.stdout.startswith("Usage: ollama-doctor [OPTIONS] [COMMAND] [ARGS]...\n")
    assert run.stdout == cli("--help").stdout == cli("-h").stdout


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_dash_h_is_help_everywhere(name: str) -> None:
    argv = [name] if name else []
    assert help_text(*argv, "-h") == help_text(*argv, "--help")


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_line_builds_only_its_command(name: str, cli: Callable[..., CliRun],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` builds NAME's command alone for ``ollama-doctor NAME …`` (typer's build of
    every command costs more than some runs): the same help, through the real entry point."""
    built: list[str | None] = []
    real = doctor._command

    def recording(only: str | None = None) -> Any:
        built.append(only)
        return real(only)

    monkeypatch.setattr(doctor, "_command", recording)
    run = cli(name, "-h")
    assert (run.code, run.stderr) == (0, "")
    assert run.stdout.startswith(f"Usage: ollama-doctor {name} ")
    assert built == [name]  # main asked for NAME's command alone
    alone = real(name)
    assert sorted(alone.commands) == [name]

    def help_in(group: click.Group) -> str:
        # (the group's context settings: click caches a command's help option on first use)
        with click.Context(group, info_name="ollama-doctor",
                           **group.context_settings) as parent, \
                click.Context(group.commands[name], info_name=name, parent=parent,
                              terminal_width=80, max_content_width=80) as ctx:
            return group.commands[name].get_help(ctx)

    assert help_in(alone) == help_in(GROUP)


def test_the_root_and_unknown_names_get_every_command() -> None:
    for argv in ([], ["-h"], ["--version"], ["nosuch"], ["-m", "check"]):
        assert doctor._invoked(argv) is None
        assert sorted(doctor._command(doctor._invoked(argv)).commands) == COMMANDS


@pytest.mark.parametrize(("name", "command"), ALL, ids=[n or "ollama-doctor" for n, _ in ALL])
def test_every_help_has_two_to_four_examples_printed_whole(name: str,
                                                           command: click.Command) -> None:
    shown = examples_of(command)
    assert 2 <= len(shown) <= 4, shown
    for width in WIDTHS:
        lines = help_text(*([name] if name else []), "-h", width=width).splitlines()
        start = lines.index("  Examples:")
        printed = [line.strip() for line in lines[start + 1:]
                   if line.strip() and not line.strip().startswith("#")]
        assert printed == shown, f"width {width}"  # whole: never reflowed, never cut
    text = help_text(*([name] if name else []), "-h", width=80)
    for line in text.split("\n  Examples:\n", 1)[1].splitlines():
        assert len(line) <= 80, line  # fits an 80-column terminal as printed


@pytest.mark.parametrize(("name", "command"), ALL, ids=[n or "ollama-doctor" for n, _ in ALL])
def test_every_example_parses(name: str, command: click.Command) -> None:
    """Each example is a command line this tool accepts: its options exist, its values parse
    (parsing only: nothing runs, nothing is installed)."""
    for example in examples_of(command):
        words = shlex.split(example)
        cut = next((i for i, w in enumerate(words) if w in ("|", ">")), len(words))
        start = words.index("ollama-doctor") if "ollama-doctor" in words[:cut] else None
        if start is None:  # e.g. curl against the exporter
            continue
        argv = words[start + 1:cut]
        if argv == ["--install-completion"]:
            assert any("--install-completion" in p.opts for p in GROUP.params)
            continue
        sub = GROUP.commands[argv[0]]
        with sub.make_context(argv[0], argv[1:], parent=GROUP.make_context(
                "ollama-doctor", [argv[0]], resilient_parsing=True)) as ctx:
            assert ctx.command is sub


@pytest.mark.parametrize("name", COMMANDS)
def test_metavars_say_what_to_type_and_defaults_read_plainly(name: str) -> None:
    text = help_text(name, "-h", width=100)
    assert not re.search(r"\b(TEXT|FLOAT|INTEGER)\b|<\w+(\[\w+\])?>", text), text
    assert "\\[" not in text  # typer's rich escape of "[default: …]" (see cli._plain_help)
    options = text.split("\nOptions:\n", 1)[1]
    # an option name is never split at a hyphen ("--client-" / "timeout")
    assert not re.search(r"--[a-z0-9-]*-\n", options), options


def test_common_options_name_their_values() -> None:
    text = help_text("check", "-h", width=200)
    for shown in ("--host URL", "--client NAME", "-m, --model NAME", "--timeout SECONDS",
                  "--header 'NAME: VALUE'", "--needs CAP", "--nameserver ADDR[:PORT]",
                  "--log-file FILE", "--log-lines N", "-o, --output FILE",
                  "--error MESSAGE", "--error-file FILE", "--targets FILE",
                  "--request FILE", "--project DIR"):
        assert f"  {shown}  " in text, shown
    assert "[default: 5.0]" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_command_list_is_never_cut(width: int) -> None:
    text = help_text(width=width)
    listed = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    assert "..." not in listed
    assert len(listed.splitlines()) == len(COMMANDS)  # one line each, even at 60 columns
    for name in COMMANDS:
        short = GROUP.commands[name].short_help
        assert short and short.endswith("."), name
        joined = " ".join(listed.split())
        assert f"{name} {short}" in joined, (name, listed)


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    """Options with defaults shown (typer imports rich to escape them: see cli._plain_help),
    the probe list and the cause list stay offline and light."""
    for argv in (("check", "--help"), ("probe", "-h"), ("explain", "--list")):
        t = trace(tmp_path, *argv)
        assert t.code == 0, t.stderr
        assert_budget(t, OFFLINE_FORBIDDEN)


# ---------------------------------------------------------------------------------------------
# probe -h: the probes and what each reads


def test_probe_help_lists_every_probe_one_line_each() -> None:
    text = help_text("probe", "-h", width=200)
    rows = text.split("\nProbes (", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    section: list[str] = []
    for row in rows:  # a row's wrapped text is indented under its second column
        if row.startswith("   "):
            section[-1] += " " + row.strip()
        else:
            section.append(row)
    assert [line.split()[0] for line in section] == [s.id for s in REGISTRY]
    for line, spec in zip(section, REGISTRY, strict=True):
        words = " ".join(line.split()[1:])
        assert words.startswith(spec.title), line
        assert ("(opt-in)" in words) == spec.opt_in
        reads = doctor.PROBE_OPTIONS.get(spec.id)
        assert (words.endswith("reads " + ", ".join(reads)) if reads else "reads" not in words)


# How the options a probe reads (``ctx.options.FIELD``) are spelled on the command line.
FLAGS = {"model": "-m", "needs": "--needs", "cold": "--cold", "discover": "--discover",
         "nameservers": "--nameserver", "log_file": "--log-file", "log_lines": "--log-lines",
         "concurrency": "--concurrency", "samples": "--samples",
         "latency_threshold_ms": "--latency-threshold", "client_timeout": "--client-timeout",
         "load_timeout": "--load-timeout", "load_call": "--load-call",
         "load_max_rate": "--load-max-rate", "load_max_requests": "--load-max-requests",
         "load_max_seconds": "--load-max-seconds", "prompt_tokens": "--prompt-tokens"}
EVERY_PROBE = {"timeout", "headers", "origin", "client", "debug"}  # the help's closing line
HIDDEN = {"candidates", "server_pids", "fs_root"}  # test-only options, not in the help


def test_probe_options_match_what_the_probes_read() -> None:
    """``PROBE_OPTIONS`` (shown by ``probe -h``) is what each probe's module reads from
    ``ctx.options``, directly or through a local name for it."""
    import ollama_doctor.probes

    root = Path(ollama_doctor.probes.__file__).parent
    for spec in REGISTRY:
        source = (root / f"{spec.id}.py").read_text()
        aliases = set(re.findall(r"\b(\w+) = ctx\.options(?![\w.])", source))
        fields = set(re.findall(r"\bctx\.options\.(\w+)", source))  # self.ctx.options too
        for alias in aliases:
            fields |= set(re.findall(rf"(?<![\w.]){alias}\.(\w+)", source))
        unknown = fields - set(FLAGS) - EVERY_PROBE - HIDDEN
        assert not unknown, f"{spec.id} reads {unknown}: add them to FLAGS and PROBE_OPTIONS"
        read = {FLAGS[f] for f in fields if f in FLAGS}
        assert set(doctor.PROBE_OPTIONS.get(spec.id, ())) == read, spec.id


# ---------------------------------------------------------------------------------------------
# explain --list


def test_explain_list_names_every_code_and_cause(cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "--list")
    assert (run.code, run.stderr) == (0, "")
    lines = run.stdout.splitlines()
    for row in CODES:
        assert any(re.fullmatch(rf"  {row.code}  {re.escape(row.name)} \(sent by .+\)", line)
                   for line in lines), row.code
    for cause in CATALOGUE:
        code = str(cause.code) if cause.code is not None else "-"
        pattern = rf"  {re.escape(cause.id)} +{code} +{re.escape(cause.title)}"
        assert sum(bool(re.fullmatch(pattern, line)) for line in lines) == 1, cause.id
    assert len(lines) == len(CODES) + len(CATALOGUE) + 3  # two headings and a blank line


def test_explain_list_json(cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "--list", "--json")
    assert run.code == 0
    assert run.json() == {
        "codes": [{"code": r.code, "name": r.name, "produced_by": r.source} for r in CODES],
        "causes": [{"cause": c.id, "code": c.code, "title": c.title,
                    "layer": c.layer.name.lower()} for c in CATALOGUE]}


def test_explain_list_takes_no_topic(cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "--list", "429")
    assert (run.code, run.stdout) == (2, "")
    assert run.stderr == "ollama-doctor: error: --list takes no topic, --error or --request\n"


# ---------------------------------------------------------------------------------------------
# shell completion, through click's completion machinery


def complete(line: str, shell: str = "bash") -> list[str]:
    """What the shell is offered for the last word of ``line`` (a trailing space: a new
    word), as the completion script asks for it."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    env = {"_OLLAMA_DOCTOR_COMPLETE": f"complete_{shell}", "COMP_WORDS": " ".join(words),
           "COMP_CWORD": str(len(words) - 1), "_TYPER_COMPLETE_ARGS": line}
    result = CliRunner().invoke(doctor.app, [], prog_name="ollama-doctor", env=env)
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line]


def test_probe_names_complete() -> None:
    assert complete("ollama-doctor probe ") == [s.id for s in REGISTRY]
    assert complete("ollama-doctor probe wa") == ["warmup"]
    assert complete("ollama-doctor probe nothing") == []


def test_probe_lists_complete_after_the_comma() -> None:
    assert complete("ollama-doctor exporter --probes proxy,d") == ["proxy,dns"]
    offered = complete("ollama-doctor exporter --probes proxy,dns,")
    assert offered == [f"proxy,dns,{s.id}" for s in REGISTRY if s.id not in ("proxy", "dns")]


def test_explain_topics_complete_codes_causes_and_retry() -> None:
    assert complete("ollama-doctor explain 50") == [str(r.code) for r in CODES
                                                    if str(r.code).startswith("50")]
    assert complete("ollama-doctor explain model-") == [c.id for c in CATALOGUE
                                                        if c.id.startswith("model-")]
    assert complete("ollama-doctor explain re") == [
        *(c.id for c in CATALOGUE if c.id.startswith("re")), "retry"]
    offered = complete("ollama-doctor explain ")
    assert len(offered) == len(CODES) + len(CATALOGUE) + 1


def test_client_names_complete() -> None:
    assert complete("ollama-doctor check --client ") == [c.name for c in CLIENTS]
    assert complete("ollama-doctor probe auth --client openai") == [
        c.name for c in CLIENTS if c.name.startswith("openai")]
    assert complete("ollama-doctor watch --client cu") == ["curl"]


def test_other_values_complete() -> None:
    from ollama_doctor.probes.models import CAPABILITIES

    assert complete("ollama-doctor check --needs t") == [c for c in CAPABILITIES
                                                         if c.startswith("t")]
    assert complete("ollama-doctor check --load-call g") == ["generate"]
    assert complete("ollama-doctor emulate --fault cold") == ["cold-load="]
    assert complete("ollama-doctor emulate --fault bu") == ["busy"]


def test_zsh_completion_shows_each_candidate_with_its_line() -> None:
    offered = "\n".join(complete("ollama-doctor probe d", shell="zsh"))
    assert '"dns":"Name resolution"' in offered
    assert "latency" not in offered


# ---------------------------------------------------------------------------------------------
# the aliases the issue asks for: logs --log-lines, emulate -m


def test_logs_takes_log_lines_as_check_does(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    """The error is on the first of two lines: reading the last line only finds nothing."""
    log = tmp_path / "server.log"
    log.write_text('time=2026-11-25T10:00:00Z level=ERROR source=sched.go:1 msg="Load failed" '
                   'model=x error="llama-server process has terminated: signal: killed"\n'
                   '[GIN] 2026/11/25 - 10:00:01 | 200 |    1.204ms |       127.0.0.1 | GET '
                   '     "/api/version"\n')
    assert cli("logs", "--log-file", str(log), "--json").code == 1
    one = cli("logs", "--log-file", str(log), "--log-lines", "1", "--json")
    assert one.code == 0, one.stdout
    assert one.stdout == cli("logs", "--log-file", str(log), "--lines", "1", "--json").stdout


@pytest.fixture
def emulator_process() -> Iterator[Callable[..., str]]:
    """``ollama-doctor emulate ARGS`` on a free loopback port: its URL (first line printed)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ(),
            stdin=subprocess.DEVNULL)
        procs.append(proc)
        timer = threading.Timer(30, proc.kill)  # a hang fails the test instead of the run
        timer.start()
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
        finally:
            timer.cancel()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        return url

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate(timeout=30)


def test_emulate_takes_dash_m_as_check_does(emulator_process: Callable[..., str]) -> None:
    import json

    url = emulator_process("-m", "qwen3:8b", "-m", "tiny:1b")
    with urllib.request.urlopen(url + "/api/tags", timeout=10) as response:  # loopback only
        tags: dict[str, Any] = json.load(response)
    assert [m["name"] for m in tags["models"]] == ["qwen3:8b", "tiny:1b"]
