"""The command line: wiring only (options → context → run → diagnose → render/export → exit).

Exit codes: 0 no error-level cause (warnings allowed; ``--strict`` fails them too); 1 an
error-level cause was found or a probe crashed; 2 bad usage or input. Heavy modules (httpx,
rich, psutil, dnspython) are imported inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, NoReturn

import typer
import typer.core

from ollama_doctor import __version__

# typer ≥ 0.20 vendors click privately; find its exception base through a public class so that
# both the old and the new layouts work.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

HELP = """Find out why calls to an Ollama server fail.

`check` runs every probe and prints a ranked diagnosis; `probe NAME` runs one.

Exit codes: 0 = no error-level cause (warnings allowed); 1 = an error-level cause was found or
a probe crashed (--strict: warnings too); 2 = bad usage or input.
"""


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


# ---------------------------------------------------------------------------------------------
# Options shared by `check` and `probe`, declared once.

COMMON: list[inspect.Parameter] = []


def _opt(name: str, annotation: Any, default: Any) -> None:
    COMMON.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    default=default, annotation=annotation))


_opt("host", Annotated[str | None, typer.Option(
    "--host", metavar="URL",
    help="Server URL as the client uses it (OLLAMA_HOST rules). Default: the pasted error's "
         "URL, else the client's own variable ($OLLAMA_HOST, or $OPENAI_BASE_URL for OpenAI "
         "clients), else http://127.0.0.1:11434.")], None)
_opt("client", Annotated[str | None, typer.Option(
    "--client", metavar="NAME", autocompletion=complete_client,
    help="The client library your app uses; its proxy, OLLAMA_HOST, API-key, base-path, "
         "timeout and retry rules apply (see `ollama-doctor probes`). Default: the one that "
         "printed the pasted error, else ollama-python.")], None)
_opt("model", Annotated[str | None, typer.Option(
    "--model", "-m", metavar="NAME",
    help="The model your calls use. Warm-up loads it into memory (it never pulls one).")],
    None)
_opt("timeout", Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", help="Seconds per network operation.")], 5.0)
_opt("client_timeout", Annotated[float | None, typer.Option(
    "--client-timeout", metavar="SECONDS",
    help="The timeout your own client uses, in seconds, if known.")], None)
_opt("load_timeout", Annotated[float, typer.Option(
    "--load-timeout", metavar="SECONDS",
    help="Seconds to wait for a model load (Ollama's own limit is 300).")], 300.0)
_opt("header", Annotated[list[str] | None, typer.Option(
    "--header", metavar="'NAME: VALUE'",
    help="A header your client sends (repeatable).")], None)
_opt("origin", Annotated[str | None, typer.Option(
    "--origin", metavar="ORIGIN",
    help="The Origin your app sends (browser extension, web page, desktop app).")], None)
_opt("samples", Annotated[int, typer.Option(
    "--samples", metavar="N", help="Latency samples per phase.")], 5)
_opt("latency_threshold", Annotated[float | None, typer.Option(
    "--latency-threshold", metavar="MS",
    help="Milliseconds of median time-to-first-byte that count as high latency.")], None)
_opt("needs", Annotated[list[str] | None, typer.Option(
    "--needs", metavar="CAP", autocompletion=complete_capability,
    help="A capability your call needs: completion, tools, vision, embedding, thinking, "
         "insert (repeatable).")], None)
_opt("cold", Annotated[bool, typer.Option(
    "--cold", help="Unload the model first, to time a true cold load.")], False)
_opt("discover", Annotated[bool, typer.Option(
    "--discover", help="In a container, also try where the host's server usually is "
                       "(host.docker.internal, the default gateway): one connect each.")], False)
_opt("nameserver", Annotated[list[str] | None, typer.Option(
    "--nameserver", metavar="ADDR[:PORT]",
    help="DNS server to ask besides the system resolver (repeatable).")], None)
_opt("log_file", Annotated[str | None, typer.Option(
    "--log-file", metavar="FILE", help="An Ollama server log to read ('-' for stdin).")], None)
_opt("log_lines", Annotated[int, typer.Option(
    "--log-lines", metavar="N", help="How many of the log's last lines to read.")], 2000)
_opt("concurrency", Annotated[int | None, typer.Option(
    "--concurrency", metavar="N", help="How many calls your app makes at once.")], None)
_opt("load", Annotated[bool, typer.Option(
    "--load", help="check: also run the opt-in load probe.")], False)
_opt("load_call", Annotated[str, typer.Option(
    "--load-call", metavar="CALL", autocompletion=complete_load_call,
    help="What the load probe sends: version (finds gateway limits) or generate (fills the "
         "model queue).")], "version")
_opt("load_max_rate", Annotated[float, typer.Option(
    "--load-max-rate", metavar="PER_SECOND",
    help="Highest request rate the load probe tries.")], 500.0)
_opt("load_max_requests", Annotated[int, typer.Option(
    "--load-max-requests", metavar="N", help="Most requests the load probe sends in all.")],
    2000)
_opt("load_max_seconds", Annotated[float, typer.Option(
    "--load-max-seconds", metavar="SECONDS", help="Longest the load probe runs.")], 20.0)
_opt("error", Annotated[str | None, typer.Option(
    "--error", metavar="MESSAGE",
    help="The error your client printed; its host becomes the target unless --host is "
         "given.")], None)
_opt("error_file", Annotated[str | None, typer.Option(
    "--error-file", metavar="FILE",
    help="A file holding the error your client printed ('-' for stdin).")], None)
_opt("json_out", Annotated[bool, typer.Option(
    "--json", help="Print the JSON report to stdout, and nothing else there.")], False)
_opt("output", Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE",
    help="Also write the report to FILE (.json or .md), atomically.")], None)
_opt("verbose", Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show facts, evidence and info notes.")], False)
_opt("strict", Annotated[bool, typer.Option(
    "--strict", help="Exit 1 on warnings too.")], False)
_opt("debug", Annotated[bool, typer.Option(
    "--debug", help="Show tracebacks of crashed probes.")], False)
_opt("server_pid", Annotated[list[int] | None, typer.Option(
    "--server-pid", metavar="PID", hidden=True,
    help="Treat this process as the Ollama server.")], None)
_opt("fs_root", Annotated[str | None, typer.Option(
    "--fs-root", metavar="DIR", hidden=True,
    help="Read /proc, /sys and /etc under this folder.")], None)
_opt("candidate", Annotated[list[str] | None, typer.Option(
    "--candidate", metavar="HOST", hidden=True,
    help="A host --discover tries instead of the usual ones.")], None)


def with_common(func: Callable[..., int]) -> Callable[..., None]:
    """Give a command the shared options; they arrive as one dict, ``common``."""
    # Resolve the string annotations (``from __future__ import annotations``): without the
    # ``Annotated`` metadata typer would show a command's own options without their help.
    import typing

    hints = typing.get_type_hints(func, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation))
           for p in inspect.signature(func).parameters.values() if p.name != "common"]
    names = {p.name for p in COMMON}

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        common = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        code = func(common=common, **kwargs)
        raise typer.Exit(code)

    wrapper.__signature__ = inspect.Signature([*own, *COMMON])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *COMMON]}
    return wrapper


# ---------------------------------------------------------------------------------------------
# check / probe


@app.command(
    cls=HelpCommand, short_help="Run every probe; print a ranked diagnosis.",
    epilog=examples(
        ("every probe against $OLLAMA_HOST or 127.0.0.1:11434, then the diagnosis",
         "ollama-doctor check"),
        ("start from the error your app printed, with the model it calls",
         "ollama-doctor check --error-file traceback.txt -m llama3.2"),
        ("a remote server, as the OpenAI client sees it, as JSON",
         "ollama-doctor check --host http://gpu:11434 --client openai-python --json"),
        ("do your client's timeout and retries survive the model's load?",
         "ollama-doctor check -m llama3.2 --client-timeout 10 --client-retries 2")))
@with_common
def check(
    common: dict[str, Any],
    targets: Annotated[str | None, typer.Option(
        "--targets", metavar="FILE",
        help="Check every server in FILE instead (one URL a line, optional model=NAME; or "
             "Prometheus file_sd JSON) with the fleet probes.")] = None,
    parallel: Annotated[int, typer.Option(
        "--parallel", metavar="N",
        help="With --targets: how many servers to check at once.")] = 32,
    v1: Annotated[bool, typer.Option(
        "--v1", help="Also check the OpenAI-compatible API (/v1) as an OpenAI client would "
                     "(implied by --client openai-python/openai-node and by a /v1 target).")]
    = False,
    request: Annotated[str | None, typer.Option(
        "--request", metavar="FILE",
        help="A JSON request body your app sends ('-' for stdin): checked field by field "
             "the way Ollama parses it.")] = None,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", metavar="PATH",
        help="With --request: the endpoint it goes to (/api/chat, /v1/chat/completions, …); "
             "guessed from the body when not given.")] = None,
    send: Annotated[bool, typer.Option(
        "--send", help="With --request: also send the body to the server once and compare "
                       "the answer with the prediction.")] = False,
    python: Annotated[str | None, typer.Option(
        "--python", metavar="INTERPRETER",
        help="Your app's Python interpreter: list the Ollama client libraries installed for "
             "it, and their known pitfalls.")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", metavar="DIR",
        help="Your app's project folder: the client libraries it pins (requirements, "
             "pyproject, uv/poetry locks, package.json), and their known pitfalls.")] = None,
    client_retries: Annotated[int | None, typer.Option(
        "--client-retries", metavar="N",
        help="How many times your client retries a failed call (default: the --client "
             "family's own, e.g. openai: 2); judged against the measured model load.")]
    = None,
) -> int:
    """Run every probe in order and print a ranked diagnosis."""
    from ollama_doctor.registry import REGISTRY

    if targets:
        from ollama_doctor import fleet

        given = [name for name, value in (("--request", request), ("--python", python),
                                          ("--project", project), ("--send", send),
                                          ("--client-retries", client_retries)) if value]
        if given:
            fail_usage(f"{given[0]} checks one app against one server, not with --targets")
        return fleet.command(common, targets, parallel, _context, fail_usage)

    own = _CheckExtras(v1=v1, request=request, endpoint=endpoint, send=send, python=python,
                       project=project, client_retries=client_retries)
    own.prepare(common)
    ids = [s.id for s in REGISTRY if not s.opt_in or (s.id == "load" and common["load"])]
    return _run("check", ids, [], common, own)


class _CheckExtras:
    """What ``check`` adds to the probes: the user's own request body (``--request``), their
    client libraries (``--python``/``--project``), their retry policy (``--client-retries``)
    and the OpenAI-compatible path (``--v1``). Inputs are read before any probe runs (a bad
    file is a usage error, exit 2); the findings join the run as results ``request``,
    ``clientlibs`` and ``retry``, ranked with the rest."""

    def __init__(self, *, v1: bool = False, request: str | None = None,
                 endpoint: str | None = None, send: bool = False, python: str | None = None,
                 project: str | None = None, client_retries: int | None = None) -> None:
        self.v1, self.request, self.endpoint, self.send = v1, request, endpoint, send
        self.python, self.project, self.client_retries = python, project, client_retries
        self.body: str | None = None
        self.libraries: list[Any] = []
        self.request_doc: dict[str, Any] | None = None
        self.request_text: str | None = None
        self.verdict: Any = None

    def prepare(self, common: dict[str, Any]) -> None:
        from ollama_doctor import request_check as rc

        if (self.endpoint is not None or self.send) and self.request is None:
            fail_usage("--endpoint and --send go with --request FILE")
        if self.client_retries is not None and not 0 <= self.client_retries <= 100:
            fail_usage(f"--client-retries must be between 0 and 100, not {self.client_retries}")
        if self.request is not None:
            if self.request == "-" and "-" in (common["error_file"], common["log_file"]):
                fail_usage("only one option may read stdin: --request - and another '-'")
            try:
                self.body = rc.load_body(self.request)
                if self.endpoint is not None:
                    rc.normalise_endpoint(self.endpoint)
            except rc.RequestCheckError as exc:
                fail_usage(f"--request: {exc}")
            if common["model"] is None:  # the body's model is the one to look at
                try:
                    parsed = rc.parse_body(self.body)
                except Exception:
                    parsed = None
                name = parsed.get("model") if isinstance(parsed, dict) else None
                if isinstance(name, str) and name.strip():
                    common["model"] = name.strip()
        if self.python is not None or self.project is not None:
            from ollama_doctor import clientlibs

            try:
                if self.python is not None:
                    self.libraries += clientlibs.from_python(self.python)
                if self.project is not None:
                    self.libraries += clientlibs.from_project(self.project)
            except clientlibs.ClientLibError as exc:
                fail_usage(str(exc))

    def wants_v1(self, ctx: Any) -> bool:
        from ollama_doctor.probes.v1 import implied

        return self.v1 or implied(ctx.target.path, ctx.client.base_path)

    def results(self, ctx: Any, results: list[Any]) -> list[Any]:
        """The extra results, from the probes' facts (model capabilities, measured load)."""
        out = []
        if self.body is not None:
            out.append(self._request(ctx, results))
        if self.python is not None or self.project is not None:
            out.append(self._clientlibs())
        retry = self._retry(ctx, results)
        if retry is not None:
            out.append(retry)
        return out

    def _request(self, ctx: Any, results: list[Any]) -> Any:
        from ollama_doctor import request_check as rc
        from ollama_doctor.result import ProbeResult, status_of

        facts = {r.id: r.facts for r in results}
        show = (facts.get("models", {}).get("model") or {}).get("show") or {}
        ps = facts.get("warmup", {}).get("ps") or {}
        caps = show.get("capabilities")
        report = rc.check_request(
            self.body or "", self.endpoint,
            capabilities=caps if isinstance(caps, list) else None,
            context_length=show.get("context_length") if isinstance(
                show.get("context_length"), int) else None,
            default_num_ctx=ps.get("context_length") if isinstance(
                ps.get("context_length"), int) else None)
        replay = None
        if self.send:
            wait = max(ctx.options.timeout, 30.0)  # the body may load the model first
            replay = rc.send(self.body or "", self.endpoint, ctx.target.root_url,
                             timeout=wait, report=report,
                             client=ctx.http_client(timeout=wait),
                             headers=ctx.client_headers(with_origin=False))
        self.request_doc = {**report.to_dict(), "source": self.request,
                            "replay": replay.to_dict() if replay else None}
        self.request_text = rc.as_text(report, replay)
        findings = list(report.findings)
        if replay is not None and not replay.matches and replay.status is not None:
            summary = "replayed: " + "; ".join(replay.differences)
        elif report.prediction is None:
            summary = f"POST {report.endpoint}: Ollama accepts this body"
        else:
            summary = (f"POST {report.endpoint}: Ollama answers {report.prediction.status} "
                       f"{str(report.prediction.body)[:120]}")
        if replay is not None and replay.matches:
            summary += f" (replayed: {replay.status}, as predicted)"
        return ProbeResult("request", "Request body", status_of(findings), summary,
                           facts={"request": self.request_doc}, findings=findings)

    def _clientlibs(self) -> Any:
        from ollama_doctor import clientlibs
        from ollama_doctor.result import ProbeResult, status_of

        findings = clientlibs.pitfalls(self.libraries)
        names = ", ".join(f"{lib.name} {lib.version or lib.spec}" for lib in self.libraries)
        summary = (f"client libraries: {names}" if self.libraries else
                   "no Ollama client library found")
        return ProbeResult("clientlibs", "Client libraries", status_of(findings), summary,
                           facts=clientlibs.Inventory(self.libraries).to_dict(),
                           findings=findings)

    def _retry(self, ctx: Any, results: list[Any]) -> Any:
        from ollama_doctor import retry
        from ollama_doctor.result import Finding, FixStep, ProbeResult, Severity, status_of

        warm = next((r for r in results if r.id == "warmup"), None)
        load_s = warm.facts.get("load_s") if warm is not None else None
        cold = warm is not None and warm.facts.get("load_kind") in ("cold", "reload")
        if self.client_retries is None and ctx.options.client_timeout is None:
            return None
        if not cold or not isinstance(load_s, (int, float)):
            if self.client_retries is None:
                return None
            return ProbeResult("retry", "Client retry policy", status_of([]),
                               "no cold load was measured (the model was loaded; --cold "
                               "times one): the retry policy was not judged",
                               facts={"client_retries": self.client_retries})
        retries = self.client_retries if self.client_retries is not None else ctx.client.retries
        verdict = retry.judge(float(load_s), ctx.options.client_timeout, retries)
        self.verdict = verdict
        if verdict.succeeds and self.client_retries is None:
            return None  # a policy that works is reported when asked about (--client-retries)
        findings = []
        if not verdict.succeeds:
            findings.append(Finding(
                "slow-model-load", Severity.ERROR, verdict.message,
                {"load_s": load_s, "client_timeout": ctx.options.client_timeout,
                 "client_retries": retries, "client": ctx.client.name,
                 "verdict": verdict.to_dict()},
                [FixStep(step) for step in verdict.advice]))
        summary = (f"{retries} retries with a {ctx.options.client_timeout:g} s timeout "
                   f"against a {load_s:g} s load: "
                   + ("every try aborts the load" if not verdict.succeeds else
                      "the first try succeeds")) if ctx.options.client_timeout else \
            f"{retries} retries, no client timeout: the first try succeeds"
        return ProbeResult("retry", "Client retry policy", status_of(findings), summary,
                           facts={"verdict": verdict.to_dict(), "client_retries": retries},
                           findings=findings)

    def adjust(self, ranked: list[Any]) -> None:
        """The diagnosis's retry advice for a slow load: the judged policy, when one was."""
        from ollama_doctor.result import Retry

        if self.verdict is None or self.verdict.succeeds:
            return
        for diag in ranked:
            if diag.cause == "slow-model-load":
                diag.retry = Retry(False, f"{self.verdict.message} "
                                          + " ".join(self.verdict.advice))


# The options a probe reads besides those every probe that calls the server reads (--host,
# --client, --timeout, --header, --origin): shown by `probe -h`, kept true by test_cli_help.
PROBE_OPTIONS: dict[str, tuple[str, ...]] = {
    "dns": ("--nameserver",),
    "latency": ("--samples", "--latency-threshold", "--client-timeout"),
    "container": ("-m", "--discover"),
    "server": ("--log-file", "--log-lines"),
    "ulimit": ("--concurrency",),
    "resources": ("-m",),
    "models": ("-m", "--needs"),
    "auth": ("-m",),
    "warmup": ("-m", "--cold", "--load-timeout", "--client-timeout"),
    "v1": ("-m", "--needs", "--load-timeout"),
    "load": ("-m", "--load-call", "--load-max-rate", "--load-max-requests",
             "--load-max-seconds", "--load-timeout"),
}


class ProbeHelp(HelpCommand):
    """``probe -h``: the probe names, one line each with the options each reads, before the
    examples (the registry is read when the help is printed, not on every command)."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from ollama_doctor.registry import REGISTRY

        rows = []
        for spec in REGISTRY:
            text = spec.title + (" (opt-in)" if spec.opt_in else "")
            if PROBE_OPTIONS.get(spec.id):
                text += "; reads " + ", ".join(PROBE_OPTIONS[spec.id])
            rows.append((spec.id, text))
        with formatter.section("Probes (`ollama-doctor probes` says what each finds)"):
            formatter.write_dl(rows)
            formatter.write_paragraph()
            formatter.write_text("Every probe that calls the server reads --host, --client, "
                                 "--timeout, --header and --origin.")
        super().format_epilog(ctx, formatter)


@app.command(
    cls=ProbeHelp, short_help="Run one probe and diagnose what it finds.",
    epilog=examples(
        ("is a server there, and is it Ollama?",
         "ollama-doctor probe reachability --host http://gpu-box:11434"),
        ("does the model have what the call needs?",
         "ollama-doctor probe models -m llama3.2 --needs tools"),
        ("how long does a true cold load take?", "ollama-doctor probe warmup -m llama3.2 --cold"),
        ("what the system resolver and your DNS server answer",
         "ollama-doctor probe dns --host http://gpu-box:11434 --nameserver 192.168.1.1")))
@with_common
def probe(
    common: dict[str, Any],
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", autocompletion=complete_probe,
        help="The probe to run (listed below).")] = None,
) -> int:
    """Run one probe, after the probes it needs (shown as prerequisites), with a diagnosis
    about the probe asked for."""
    from ollama_doctor import registry

    if name not in registry.BY_ID:  # a missing name too: the message lists the valid ones
        valid = ", ".join(s.id for s in registry.REGISTRY)
        given = f"unknown probe {name!r}" if name is not None else "probe needs a NAME"
        fail_usage(f"{given}; valid probes: {valid}")
    needed = [p for p in registry.closure(name) if p != name]
    return _run(f"probe {name}", [name], needed, common)


def _run(command: str, ids: list[str], prerequisites: list[str], common: dict[str, Any],
         extras: _CheckExtras | None = None) -> int:
    """Run the probes, diagnose, print (and write ``-o``) the report; the exit code."""
    ctx = _context(common)
    if extras is not None and extras.wants_v1(ctx) and "v1" not in ids:
        ids = [*ids, "v1"]
    _check_output(common["output"])

    from ollama_doctor import diagnosis, report

    results = _probe_results(ctx, ids, prerequisites, quiet=common["json_out"])
    if extras is not None:
        results = [*results, *extras.results(ctx, results)]
    ranked = diagnosis.rank(results, error=ctx.error, target=ctx.target)
    if prerequisites:
        ranked = _focus(ranked, results, set(ids))
    if extras is not None:
        extras.adjust(ranked)
    # the checks as the diagnosis judged them (a container-localhost demoted to a note no
    # longer fails its check); rank() itself must see the original results
    shown = diagnosis.adjusted(results)
    summary = diagnosis.summary(ranked, shown, strict=common["strict"])
    doc = report.build(ctx, shown, ranked, summary, command=command)
    if extras is not None and extras.request_doc is not None:
        from ollama_doctor.redact import Redactor

        doc["request"] = report.scrub(extras.request_doc, Redactor(ctx.secrets()))
    _print_report(ctx, doc, shown, common, extras)
    _write_output(doc, common["output"])
    return int(summary["exit_code"])


def _probe_results(ctx: Any, ids: list[str], prerequisites: list[str], *,
                   quiet: bool) -> list[Any]:
    """The probes' results, with a progress line on the terminal unless ``quiet``."""
    from ollama_doctor.runner import run_probes

    if quiet:  # nothing but the document on stdout, and no rich to import
        return run_probes(ctx, ids, prerequisites=prerequisites)
    from ollama_doctor import render

    with render.progress("Diagnosing") as update:
        def on_event(name: str, result: Any) -> None:
            if result is None:
                update(name)

        return run_probes(ctx, ids, prerequisites=prerequisites, on_event=on_event)


def _print_report(ctx: Any, doc: dict[str, Any], results: list[Any], common: dict[str, Any],
                  extras: _CheckExtras | None) -> None:
    """The report on stdout: the JSON document (``--json``), or the rendered screen with the
    request check's own text and, with ``--debug``, crashed probes' tracebacks on stderr."""
    from ollama_doctor import report

    if common["json_out"]:
        sys.stdout.write(report.to_json(doc))
        return
    from ollama_doctor import render

    render.report(doc, render.console(), verbose=common["verbose"])
    if extras is not None and extras.request_text is not None:
        from ollama_doctor.redact import Redactor

        print("\n" + Redactor(ctx.secrets()).scrub(extras.request_text))
    if common["debug"]:
        for result in results:
            if result.error and result.error.traceback:
                sys.stderr.write(f"--- {result.id}\n{result.error.traceback}")


def _write_output(doc: dict[str, Any], path: str | None) -> None:
    """``-o FILE``: the report as JSON or Markdown (by the name), written atomically."""
    if not path:
        return
    from ollama_doctor import report

    fmt = report.output_format(path)
    text = report.to_json(doc) if fmt == "json" else report.to_markdown(doc)
    try:
        report.write_atomic(path, text)
    except OSError as exc:
        fail_usage(f"cannot write {path!r}: {exc.strerror or exc}")


def _focus(ranked: list[Any], results: list[Any], asked: set[str]) -> list[Any]:
    """``probe NAME``: the diagnosis is about the probe asked for. Its own causes come first;
    a prerequisite's cause follows only when it breaks calls (error or worse) or blocked the
    probe asked for — it is then the reason behind what the asked probe saw — and a
    prerequisite's warnings and notes are left to ``check``."""
    from ollama_doctor.result import Severity

    blockers = {r.blocked_by for r in results if r.id in asked and r.blocked_by}
    own = [d for d in ranked if (asked | {"error-text"}) & set(d.probes)]
    rest = [d for d in ranked if d not in own and (
        blockers & set(d.probes) or d.severity.rank >= Severity.ERROR.rank)]
    focused = own + rest
    for position, diag in enumerate(focused, start=1):
        diag.rank = position
    return focused


def _context(common: dict[str, Any]) -> Any:
    """The run's context from the shared options, each value checked first (exit 2): the
    target, the client family and what the pasted error tells."""
    _validate(common, os.environ)
    _check_values(common)
    headers = _headers(common["header"])
    from pathlib import Path

    from ollama_doctor.context import Context, Options

    env = dict(os.environ)
    error_text = _error_text(common)
    analysis = None
    if error_text is not None:
        from ollama_doctor.errortext import analyse

        analysis = analyse(error_text)
    client = _client(common["client"], analysis)
    target = _target(common["host"], analysis, client, env)
    model, client_timeout = _model_and_timeout(common, analysis, client)
    options = Options(
        timeout=common["timeout"], client_timeout=client_timeout,
        load_timeout=common["load_timeout"], model=model, headers=tuple(headers),
        origin=common["origin"], samples=common["samples"],
        latency_threshold_ms=common["latency_threshold"], needs=tuple(common["needs"] or ()),
        cold=common["cold"], discover=common["discover"],
        candidates=tuple(common["candidate"] or ()),
        nameservers=tuple(common["nameserver"] or ()), log_file=common["log_file"],
        log_lines=common["log_lines"],
        concurrency=common["concurrency"], load=common["load"], load_call=common["load_call"],
        load_max_rate=common["load_max_rate"], load_max_requests=common["load_max_requests"],
        load_max_seconds=common["load_max_seconds"],
        server_pids=tuple(common["server_pid"] or ()), error_text=error_text,
        debug=common["debug"], client=client.name)
    ctx = Context(target=target, options=options, env=env,
                  fs_root=Path(common["fs_root"] or "/"), error=analysis)
    ctx.deadline = ctx.clock() + 2 * options.timeout
    return ctx


def _check_values(common: dict[str, Any]) -> None:
    """Numbers in range and capability names Ollama knows, or a usage error naming them."""
    for name in ("timeout", "load_timeout"):
        if not common[name] > 0:
            fail_usage(f"--{name.replace('_', '-')} must be a positive number of seconds, "
                       f"not {common[name]}")
    if common["client_timeout"] is not None and not common["client_timeout"] > 0:
        fail_usage(f"--client-timeout must be positive, not {common['client_timeout']}")
    if not 1 <= common["log_lines"] <= 100_000:
        fail_usage(f"--log-lines must be between 1 and 100000, not {common['log_lines']}")
    if common["samples"] < 1 or common["samples"] > 1000:
        fail_usage(f"--samples must be between 1 and 1000, not {common['samples']}")
    if common["needs"]:  # the capability names Ollama's /api/show uses, and their aliases
        from ollama_doctor.probes.models import ALIASES, CAPABILITIES

        for need in common["needs"]:
            if need.lower() not in CAPABILITIES and need.lower() not in ALIASES:
                fail_usage(f"--needs {need!r} is not a capability; valid values: "
                           f"{', '.join(CAPABILITIES)}")
    for name in ("load_max_rate", "load_max_requests", "load_max_seconds"):
        if not common[name] > 0:
            fail_usage(f"--{name.replace('_', '-')} must be positive, not {common[name]}")


def _headers(given: list[str] | None) -> list[tuple[str, str]]:
    """``--header 'Name: value'`` → (name, value) pairs; anything else is a usage error."""
    headers: list[tuple[str, str]] = []
    for raw in given or []:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            fail_usage(f"invalid --header {raw!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return headers


def _target(host: str | None, analysis: Any, client: Any, env: dict[str, str]) -> Any:
    """The target: --host, the URL the pasted error shows, the client's own variable
    ($OLLAMA_HOST, or $OPENAI_BASE_URL for OpenAI clients), the default."""
    from ollama_doctor.target import TargetError, parse_target

    host_env: Literal["OLLAMA_HOST", "OPENAI_BASE_URL", ""] = (
        "OLLAMA_HOST" if client.host_env == "OLLAMA_HOST" else
        "OPENAI_BASE_URL" if client.host_env == "OPENAI_BASE_URL" else "")
    try:
        if host is not None:
            return parse_target(host, "option")
        if analysis is not None:
            from ollama_doctor.errortext import target_from

            if target_from(analysis.extracted):
                return parse_target(target_from(analysis.extracted), "error-text")
        if host_env and env.get(host_env, "").strip():
            return parse_target(env[host_env], host_env)
        return parse_target(None)
    except TargetError as exc:
        fail_usage(str(exc))


def _model_and_timeout(common: dict[str, Any], analysis: Any,
                       client: Any) -> tuple[str | None, float | None]:
    """The model and the client's timeout: as given, else what the pasted error holds, else
    (the timeout) the client family's own default."""
    model, client_timeout = common["model"], common["client_timeout"]
    if analysis is not None:  # facts the pasted error holds fill in what was not given
        model = model or analysis.extracted.get("model")
        timed_out = {"slow-model-load", "connect-timeout"} & set(analysis.causes)
        if client_timeout is None and timed_out and analysis.extracted.get("elapsed_s"):
            client_timeout = float(analysis.extracted["elapsed_s"])
    if client_timeout is None and client.default_timeout_s is not None:
        client_timeout = client.default_timeout_s  # the client's own default (httpx: 5 s)
    return model, client_timeout


def _client(name: str | None, analysis: Any) -> Any:
    """The client family: ``--client``, else the one that printed the pasted error, else
    ollama-python. An unknown name is a usage error listing the valid ones."""
    from ollama_doctor import clients

    if name is None and analysis is not None and getattr(analysis, "client", None):
        try:
            return clients.get(analysis.client)
        except KeyError:
            pass  # a reader's name clients.py does not know: fall back to the default
    try:
        return clients.get(name)
    except KeyError as exc:
        fail_usage(str(exc.args[0]))


def _validate(common: dict[str, Any], env: Any) -> None:
    """Reject control characters in what the user typed, once, before anything runs: a CR or
    LF in a header makes the HTTP library refuse every request, which would otherwise be
    diagnosed as an unresponsive server. Messages never show a secret (values of secret
    headers are masked, URLs shown with ``***`` for a password).

    ``OLLAMA_API_KEY`` is not checked here: a stray character in it is a finding
    (``sanitize.api_key_finding``), since the user's own client sends it too."""
    from ollama_doctor.redact import MASK, is_secret_name, redact_url
    from ollama_doctor.sanitize import stray_character, visible

    tchar = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # RFC 9110 §5.6.2: what names may hold
    for raw in common.get("header") or []:
        name, sep, value = raw.partition(":")
        name = name.strip()
        shown = f"{name}: {MASK}" if is_secret_name(name) else raw
        stray = stray_character(name)
        if stray is None and sep and name and not set(name) <= tchar:
            bad = next(c for c in name if c not in tchar)
            fail_usage(f"invalid --header {shown!r}: the name holds {bad!r}, which header "
                       "names cannot contain")
        stray = stray or stray_character(value.strip(" "), allow_tab=True)
        if stray is not None:
            fail_usage(f"invalid --header '{visible(shown)}': it holds {stray}; "
                       "header names and values cannot contain control characters")
    for option, key in (("--origin", "origin"), ("--model", "model")):
        value = common.get(key)
        stray = stray_character(value) if isinstance(value, str) else None
        if isinstance(value, str) and stray is not None:
            fail_usage(f"invalid {option} '{visible(value)}': it holds {stray}")
    host, where = common.get("host"), "--host"
    if host is None and env.get("OLLAMA_HOST", "").strip():
        host, where = env["OLLAMA_HOST"], "OLLAMA_HOST"
    if isinstance(host, str):
        stray = stray_character(host)
        # a trailing newline from `export OLLAMA_HOST=$(cat file)` is still a usage error:
        # clients read the variable differently (Go trims it, httpx does not)
        if stray is not None:
            fail_usage(f"invalid {where} '{redact_url(visible(host))}': it "
                       f"holds {stray}")


MAX_ERROR_TEXT = 256 * 1024


def _error_text(common: dict[str, Any]) -> str | None:
    if common["error"] is not None and common["error_file"] is not None:
        fail_usage("give --error or --error-file, not both")
    if common["error"] is not None:
        return str(common["error"])[:MAX_ERROR_TEXT]
    path = common["error_file"]
    if path is None:
        return None
    if path == "-":
        if common["log_file"] == "-":
            fail_usage("only one option may read stdin: --error-file - and --log-file - given")
        return sys.stdin.read(MAX_ERROR_TEXT)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(MAX_ERROR_TEXT)
    except OSError as exc:
        fail_usage(f"cannot read --error-file {path!r}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------
# offline commands


@app.command(
    "probes", cls=HelpCommand, short_help="List the probes and the client families.",
    epilog=examples(("what each probe needs and can find", "ollama-doctor probes"),
                    ("the same as JSON, e.g. the causes each probe can report",
                     "ollama-doctor probes --json | jq '.probes[] | {id, causes}'")))
def probes_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the probes (name, title, what each needs and can find) and the client families
    --client selects (which proxy variables, host and key variables, base path, timeout and
    retries each one has)."""
    from ollama_doctor.clients import CLIENTS, DEFAULT
    from ollama_doctor.registry import REGISTRY

    rows: list[dict[str, Any]] = [{"id": s.id, "title": s.title, "description": s.description,
             "needs": list(s.needs), "after": list(s.after), "opt_in": s.opt_in,
             "causes": list(s.causes)} for s in REGISTRY]
    families = [c.rules() for c in CLIENTS]
    if json_out:
        import json

        print(json.dumps({"probes": rows, "clients": families, "default_client": DEFAULT.name},
                         indent=2))
        return
    for row in rows:
        needs = ", ".join(row["needs"]) or "-"
        extra = " (opt-in)" if row["opt_in"] else ""
        print(f"{row['id']:<13} {row['title']}{extra}")
        print(f"{'':<13} {row['description']}")
        print(f"{'':<13} needs: {needs}; finds: {', '.join(row['causes'])}")
    print(f"\nClient families (--client NAME; default {DEFAULT.name}):")
    for client in CLIENTS:
        print(f"{client.name:<17} {client.label}")
        for line in _client_rules(client):
            print(f"{'':<17} {line}")


def _client_rules(client: Any) -> list[str]:
    from ollama_doctor.proxyenv import USED_BY

    proxy = ("reads no proxy variable" if client.proxy_family is None else
             f"proxy rules: {client.proxy_family}")
    if client.proxy_family == "node":
        proxy += " (none unless NODE_USE_ENV_PROXY=1)"
    elif client.proxy_family == "curl":
        proxy += " (http_proxy in lower case only; ignores HTTP_PROXY)"
    elif client.proxy_family in USED_BY:
        proxy += f" (as {USED_BY[client.proxy_family]})"
    host = client.host_env or "no host variable (the URL in the code)"
    key = client.key_env or "none"
    timeout = ("none (waits forever)" if client.default_timeout_s is None
               else f"{client.default_timeout_s:g} s")
    retries = f"{client.retries} retries" if client.retries else "no retries"
    lines = [proxy, f"host from: {host}; bearer key from: {key}; base path: "
             f"{client.base_path or '/ (native API)'}",
             f"default timeout: {timeout}; {retries}; ports: {client.default_port_rule}"]
    if client.note:
        lines.append(client.note)
    return lines


@app.command(
    cls=HelpCommand, short_help="Explain a status code, cause or error.",
    epilog=examples(
        ("what a status means, who sends it, whether to retry", "ollama-doctor explain 429"),
        ("one cause: what it means and how to fix it",
         "ollama-doctor explain proxy-captures-local"),
        ("the causes an error message points to, most likely first",
         "ollama-doctor explain --error 'ConnectError: [Errno 111] Connection refused'"),
        ("every status code and cause id", "ollama-doctor explain --list")))
def explain(
    topic: Annotated[str | None, typer.Argument(
        metavar="[CODE|CAUSE|retry]", autocompletion=complete_topic,
        help="An HTTP status (400, 401, 403, 404, 429, 500, 502, 503, 504), a cause id (see "
             "--list), or 'retry' (the recommended retry policy).")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    list_all: Annotated[bool, typer.Option(
        "--list", help="List every status code and cause id, one line each.")] = False,
    error: Annotated[str | None, typer.Option(
        "--error", metavar="MESSAGE",
        help="A client error message to read (offline: no network).")] = None,
    error_file: Annotated[str | None, typer.Option(
        "--error-file", metavar="FILE", help="A file holding the error ('-' for stdin).")]
    = None,
    request: Annotated[str | None, typer.Option(
        "--request", metavar="FILE",
        help="A JSON request body ('-' for stdin) to check the way Ollama parses it "
             "(offline: no capabilities, no network).")] = None,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", metavar="PATH",
        help="With --request: the endpoint it goes to; guessed when not given.")] = None,
) -> None:
    """Look up a status code or cause offline: meaning, what to check, what to do, retry.

    With --error, read a client's error message instead: candidate causes, most likely first,
    and the facts it holds. `explain retry` prints the recommended retry policy. With
    --request, check a request body (exit 1 when Ollama rejects it).
    """
    from ollama_doctor import explain as explainer

    if list_all:
        if any(v is not None for v in (topic, error, error_file, request, endpoint)):
            fail_usage("--list takes no topic, --error or --request")
        _explain_list(json_out)
        return
    if request is not None or endpoint is not None:
        _explain_request(topic, error, error_file, request, endpoint, json_out)
        return
    if topic is not None and topic.strip().lower() == "retry" and error is None \
            and error_file is None:
        from ollama_doctor import retry

        _show(retry.policy(), lambda _: retry.policy_text(), json_out)
        return
    if error is not None or error_file is not None:
        if topic is not None:
            fail_usage("give a topic or --error, not both")
        text = _error_text({"error": error, "error_file": error_file, "log_file": None})
        from ollama_doctor.errortext import analyse

        _show(explainer.error_report(analyse(text or "")), explainer.error_as_text, json_out)
        return
    if topic is None:
        fail_usage("explain needs a status code or a cause id, e.g. `explain 429`, "
                   "or --error TEXT (`explain --list` lists them)")
    try:
        data = explainer.lookup(topic)
    except KeyError as exc:
        fail_usage(str(exc.args[0]))
    _show(data, explainer.as_text, json_out)


def _show(data: dict[str, Any], as_text: Callable[[dict[str, Any]], str], json_out: bool) -> None:
    """Print a lookup's result: the JSON document, or ``as_text`` of it."""
    if json_out:
        import json

        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(as_text(data))


PRODUCED_BY = {"ollama": "sent by Ollama", "intermediary": "sent by a proxy or gateway",
               "both": "sent by Ollama or a proxy"}


def _explain_list(json_out: bool) -> None:
    """``explain --list``: every documented status code and every cause id, from the same
    tables ``explain TOPIC`` reads (``causes.CODES``, ``causes.CATALOGUE``)."""
    from ollama_doctor.causes import CATALOGUE, CODES

    data: dict[str, Any] = {
        "codes": [{"code": row.code, "name": row.name, "produced_by": row.source}
                  for row in CODES],
        "causes": [{"cause": c.id, "code": c.code, "title": c.title,
                    "layer": c.layer.name.lower()} for c in CATALOGUE]}
    if json_out:
        import json

        _show(data, json.dumps, json_out=True)
        return
    width = max(len(c["cause"]) for c in data["causes"])
    lines = ["HTTP status codes (explain CODE):"]
    lines += [f"  {row['code']}  {row['name']} ({PRODUCED_BY.get(row['produced_by'], '?')})"
              for row in data["codes"]]
    lines += ["", "Causes (explain CAUSE), with the HTTP status a client sees:"]
    lines += [f"  {c['cause']:<{width}}  {c['code'] or '-':<3}  {c['title']}"
              for c in data["causes"]]
    print("\n".join(lines))


def _explain_request(topic: str | None, error: str | None, error_file: str | None,
                     request: str | None, endpoint: str | None, json_out: bool) -> None:
    from ollama_doctor import request_check as rc

    if request is None:
        fail_usage("--endpoint goes with --request FILE")
    if topic is not None or error is not None or error_file is not None:
        fail_usage("give a topic, --error or --request, not more than one")
    try:
        body = rc.load_body(request)
        report = rc.check_request(body, endpoint)
    except rc.RequestCheckError as exc:
        fail_usage(f"--request: {exc}")
    if json_out:
        import json

        print(json.dumps({**report.to_dict(), "source": request}, indent=2,
                         ensure_ascii=False))
    else:
        print(rc.as_text(report))
    raise typer.Exit(EXIT_FAIL if report.prediction is not None else EXIT_OK)


@app.command(
    cls=HelpCommand, short_help="Classify an Ollama server log.",
    epilog=examples(
        ("the server's own log: journalctl -u ollama, else ~/.ollama/logs/server.log",
         "ollama-doctor logs"),
        ("a log file, reading more of its tail", "ollama-doctor logs --log-file server.log "
                                                "--log-lines 10000"),
        ("today's journal, from stdin", "journalctl -u ollama --since today | "
                                        "ollama-doctor logs --log-file -"),
        ("as JSON", "ollama-doctor logs --log-file server.log --json")))
def logs(
    log_file: Annotated[str | None, typer.Option(
        "--log-file", metavar="FILE",
        help="The server log to read ('-' for stdin). Default: journalctl -u ollama, "
             "~/.ollama/logs/server.log, /var/log/ollama/.")] = None,
    lines: Annotated[int, typer.Option(
        "--log-lines", "--lines", metavar="N",
        help="How many of the log's last lines to read (as check --log-lines).")] = 2000,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Read an Ollama server log and print the lines that explain failures, classified.

    Exit codes: 0 = nothing error-level; 1 = an error-level cause; 2 = no log could be read.
    """
    from pathlib import Path

    from ollama_doctor.logs import run_logs_command

    code, text = run_logs_command(log_file, lines, json_out, sys.stdin, dict(os.environ),
                                  Path("/"))
    if code == EXIT_USAGE:
        fail_usage(text.strip())
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    raise typer.Exit(code)


@app.command(
    cls=HelpCommand, short_help="Print the JSON Schema of the report.",
    epilog=examples(("save it next to the reports it describes",
                     "ollama-doctor schema > ollama-doctor.schema.json"),
                    ("the report's top-level keys",
                     "ollama-doctor schema | jq '.properties | keys'")))
def schema() -> None:
    """Print the JSON Schema of the report."""
    import json

    from ollama_doctor.report import schema as load

    print(json.dumps(load(), indent=2))


@app.command(
    cls=HelpCommand, short_help="Run an Ollama look-alike with faults.",
    epilog=examples(
        ("a slow first load, on a free port (the first line printed is its URL)",
         "ollama-doctor emulate --port 0 --fault cold-load=20"),
        ("a model with tools, answering 503 as a busy server does",
         "ollama-doctor emulate -m 'qwen3:8b;caps=completion,tools' --fault busy"),
        ("an empty model store, on IPv6 and IPv4", "ollama-doctor emulate --no-models --bind ::"),
        ("the faults it can inject", "ollama-doctor emulate --list-faults")))
def emulate(
    bind: Annotated[str, typer.Option(
        "--bind", metavar="ADDR",
        help="Address to listen on. '::' listens on IPv6 and IPv4 (like Go's [::]); 0.0.0.0, "
             ":: or a LAN address turns the Host-header check off, as in Ollama.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", metavar="PORT", help="Port (0 picks a free one).")] = 11434,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="SPEC",
        help="A model to serve, NAME[:TAG][;size=2G;caps=completion,tools;ctx=4096] "
             "(repeatable; default llama3.2:latest).")] = None,
    no_models: Annotated[bool, typer.Option(
        "--no-models", help="Serve an empty model store (/api/tags lists no models).")] = False,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", metavar="NAME[=VALUE]", autocompletion=complete_fault,
        help="A fault to inject (repeatable; see --list-faults).")] = None,
    list_faults: Annotated[bool, typer.Option("--list-faults", help="List faults.")] = False,
    log_file: Annotated[str | None, typer.Option(
        "--log-file", metavar="FILE", help="Append Ollama-format log lines here.")] = None,
    version: Annotated[str, typer.Option(
        "--server-version", metavar="VERSION", help="Version to report.")] = "0.33.0",
) -> None:
    """Run an Ollama look-alike with injectable faults, to see how your client copes.

    The first line printed is the URL it listens on.
    """
    from ollama_doctor import emulator

    if list_faults:
        for info in emulator.FAULTS:
            value = f"={info.value_help}" if info.value_help else ""
            print(f"{info.name + value:<28} {info.description}")
        return
    if not 0 <= port < 65536:
        fail_usage(f"--port {port} is out of range (0-65535)")
    if no_models and model:
        fail_usage("--no-models and --model exclude each other")
    try:
        models = [emulator.ModelSpec.parse(m) for m in model] if model else None
        faults = dict(emulator.parse_fault(f) for f in fault or [])
    except ValueError as exc:
        fail_usage(str(exc))
    config = emulator.EmulatorConfig(bind=bind, port=port, faults=faults, log_file=log_file,
                                     version=version)
    if models is not None or no_models:
        config.models = models or []
    try:
        emulator.serve_forever(config, announce=lambda url: print(url, flush=True))
    except OSError as exc:
        fail_usage(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------
# watch / exporter


@app.command(
    cls=HelpCommand, short_help="Check again and again; print what changed.",
    epilog=examples(
        ("one server and its model, every minute",
         "ollama-doctor watch --host http://gpu-box:11434 -m llama3.2 --interval 60"),
        ("three quick rounds, each appended as one JSON line",
         "ollama-doctor watch --count 3 --interval 5 --jsonl rounds.jsonl"),
        ("POST each change to a chat webhook",
         "ollama-doctor watch --webhook https://hooks.example.com/ollama"),
        ("run a command on each change (the change as JSON on stdin)",
         "ollama-doctor watch --on-change 'logger -t ollama \"$OLLAMA_DOCTOR_CAUSE\"'")))
@with_common
def watch(
    common: dict[str, Any],
    interval: Annotated[float, typer.Option(
        "--interval", metavar="SECONDS",
        help="Seconds between rounds (fractions allowed).")] = 60.0,
    count: Annotated[int | None, typer.Option(
        "--count", metavar="N", help="Stop after N rounds (default: run until stopped).")]
    = None,
    warmup_every: Annotated[int, typer.Option(
        "--warmup-every", metavar="N",
        help="Run the warmup probe (with -m) and --load every N rounds; 0 = never.")] = 10,
    confirm: Annotated[int, typer.Option(
        "--confirm", metavar="N",
        help="Rounds in a row a cause must show before it is announced.")] = 2,
    state: Annotated[str | None, typer.Option(
        "--state", metavar="FILE",
        help="State FILE kept across restarts (default: under $XDG_STATE_HOME, "
             "~/.local/state/ollama-doctor/watch/).")] = None,
    jsonl: Annotated[str | None, typer.Option(
        "--jsonl", metavar="FILE",
        help="Append one JSON object per round to FILE (the report, plus round and "
             "changes).")] = None,
    on_change: Annotated[str | None, typer.Option(
        "--on-change", metavar="COMMAND",
        help="Shell command run for each change, the change as JSON on stdin and "
             "OLLAMA_DOCTOR_EVENT/CAUSE/SEVERITY/CODE/TARGET/ROUND set.")] = None,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", metavar="URL",
        help="POST each change as JSON to URL (retried with backoff).")] = None,
) -> int:
    """Run the probes every --interval seconds and print only what changed.

    A cause is announced after --confirm rounds in a row and resolved, with how long it
    lasted, when a round no longer sees it. Exit code: the last round's (with --count).
    """
    from ollama_doctor import watch as watcher

    _check_watch_options(interval, count, warmup_every, confirm, state, webhook)
    _check_output(common["output"])
    ctx = _context(common)
    config = watcher.WatchConfig(
        target=ctx.target, options=ctx.options, env=ctx.env, fs_root=str(ctx.fs_root),
        interval=interval, count=count, warmup_every=warmup_every, confirm=confirm,
        state=state, jsonl=jsonl, on_change=on_change, webhook=webhook,
        json_out=common["json_out"], output=common["output"], strict=common["strict"])
    return watcher.watch(config)


def _check_watch_options(interval: float, count: int | None, warmup_every: int, confirm: int,
                         state: str | None, webhook: str | None) -> None:
    """``watch``'s own numbers, state file and URL, refused before the first round (exit 2)."""
    from ollama_doctor.watch import state_writable

    if not interval > 0:
        fail_usage(f"--interval must be a positive number of seconds, not {interval}")
    if count is not None and count < 1:
        fail_usage(f"--count must be at least 1, not {count}")
    if warmup_every < 0:
        fail_usage(f"--warmup-every must be 0 (never) or more, not {warmup_every}")
    if confirm < 1:
        fail_usage(f"--confirm must be at least 1, not {confirm}")
    if state is not None and (problem := state_writable(state)):
        fail_usage(problem)
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        fail_usage(f"--webhook must be an http:// or https:// URL, not {webhook!r}")


def _check_output(path: str | None) -> None:
    """``-o FILE``: refused before any probe runs when it could not be written (exit 2)."""
    if not path:
        return
    from ollama_doctor.report import OutputError, check_writable

    try:
        check_writable(path)
    except OutputError as exc:
        fail_usage(str(exc))


@app.command(
    cls=HelpCommand, short_help="Serve Prometheus /probe and /metrics.",
    epilog=examples(
        ("serve on 127.0.0.1:9765; Prometheus scrapes /probe?target=URL",
         "ollama-doctor exporter"),
        ("what a scrape of one server returns",
         "curl 'http://127.0.0.1:9765/probe?target=http://gpu-box:11434'"),
        ("keep checking two servers in the background, for /metrics",
         "ollama-doctor exporter --target http://a:11434 --target http://b:11434"),
        ("only the probes that need no model",
         "ollama-doctor exporter --probes proxy,reachability,dns,latency")))
def exporter(
    listen: Annotated[str, typer.Option(
        "--listen", metavar="HOST:PORT",
        help="Where to serve /probe, /metrics and /healthz.")] = "127.0.0.1:9765",
    target: Annotated[list[str] | None, typer.Option(
        "--target", metavar="URL",
        help="A server to check in the background for /metrics (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="NAME",
        help="The model the --target servers should have.")] = None,
    interval: Annotated[float, typer.Option(
        "--interval", metavar="SECONDS",
        help="Seconds between background checks of --target servers.")] = 60.0,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds per network operation of a check.")]
    = 5.0,
    max_concurrent: Annotated[int, typer.Option(
        "--max-concurrent", metavar="N",
        help="Checks that may run at once; more scrapes wait, then get 503.")] = 8,
    probes: Annotated[str | None, typer.Option(
        "--probes", metavar="NAMES", autocompletion=complete_probe_list,
        help="Probes to run, comma-separated (default: the fleet set proxy, reachability, "
             "dns, latency, models, auth).")] = None,
    probe_api_key: Annotated[bool, typer.Option(
        "--probe-api-key", help="Also send $OLLAMA_API_KEY to /probe targets (they come "
                                "from whoever scrapes; --target servers always get it).")]
    = False,
) -> None:
    """A Prometheus exporter: /probe?target=URL (blackbox style), /metrics, /healthz."""
    from ollama_doctor import exporter as exp
    from ollama_doctor.session import FLEET_PROBES, probe_ids
    from ollama_doctor.target import TargetError, parse_target

    if not interval > 0:
        fail_usage(f"--interval must be a positive number of seconds, not {interval}")
    if not timeout > 0:
        fail_usage(f"--timeout must be a positive number of seconds, not {timeout}")
    if not 1 <= max_concurrent <= 1024:
        fail_usage(f"--max-concurrent must be between 1 and 1024, not {max_concurrent}")
    try:
        exp.parse_listen(listen)
        ids = probe_ids(probes.split(",")) if probes else list(FLEET_PROBES)
        for url in target or []:
            parse_target(url, "option")
    except (ValueError, TargetError) as exc:
        fail_usage(str(exc))
    config = exp.ExporterConfig(listen=listen, targets=tuple(target or ()), model=model,
                                interval=interval, timeout=timeout,
                                max_concurrent=max_concurrent, probes=tuple(ids),
                                probe_api_key=probe_api_key)
    try:
        code = exp.run(config, announce=lambda url: print(url, flush=True))
    except OSError as exc:
        fail_usage(f"cannot listen on {listen}: {exc.strerror or exc}")
    raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 instead of tracebacks or usage boxes.

    Ctrl-C ends the run at once with exit 130 and one line (no report file is left: reports
    are written atomically). A closed pipe (``| head``) ends quietly; any other failure to
    write the output (``ENOSPC``) is one line on stderr and exit 2. The process never waits
    for a probe thread stuck in a read: the runner has already given up on it.
    """
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
        os._exit(130)  # now: not after the threads of a cut probe

    command = typer.main.get_command(app)
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
