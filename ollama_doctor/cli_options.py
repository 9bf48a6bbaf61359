"""The options ``check``, ``probe`` and ``watch`` share, declared once, and the run's context
built from them: every value checked first (a bad one is a usage error, exit 2), then the
target, the client family and what a pasted error tells."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ollama_doctor.cli_app import fail_usage
from ollama_doctor.cli_help import complete_capability, complete_client, complete_load_call

COMMON: list[inspect.Parameter] = []


def _opt(name: str, annotation: Any, default: Any) -> None:
    COMMON.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    default=default, annotation=annotation))


_opt("host", Annotated[str | None, typer.Option(
    "--host", metavar="URL",
    help="Server URL as the client uses it (OLLAMA_HOST rules). Default: the pasted error's "
         "URL, else the client's own variable ($OLLAMA_HOST; $OPENAI_BASE_URL for OpenAI "
         "clients, $OLLAMA_API_BASE for litellm, $OLLAMA_BASE_URL for langchain-js), else "
         "http://127.0.0.1:11434.")], None)
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
_opt("prompt_tokens", Annotated[int | None, typer.Option(
    "--prompt-tokens", metavar="N",
    help="How long your prompts are, in tokens: warm-up compares them with the context the "
         "model is loaded with and, when they are longer and it is cheap, sends a prompt "
         "longer than that context to see whether the server cuts it or refuses it.")], None)
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


def build_context(common: dict[str, Any]) -> Any:
    """The run's context from the shared options, each value checked first (exit 2): the
    target, the client family and what the pasted error tells."""
    _validate(common, os.environ)
    _check_values(common)
    headers = _headers(common["header"])
    from pathlib import Path

    from ollama_doctor.context import Context, Options

    env = dict(os.environ)
    error_text = read_error_text(common)
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
        concurrency=common["concurrency"], prompt_tokens=common["prompt_tokens"],
        load=common["load"], load_call=common["load_call"],
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
    if common["prompt_tokens"] is not None and common["prompt_tokens"] < 1:
        fail_usage(f"--prompt-tokens must be a positive number of tokens, not "
                   f"{common['prompt_tokens']}")
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
    (``ClientFamily.host_env``: $OLLAMA_HOST, $OPENAI_BASE_URL for OpenAI clients,
    $OLLAMA_API_BASE for litellm, $OLLAMA_BASE_URL for @langchain/ollama), the default."""
    from ollama_doctor.target import HOST_VARIABLES, TargetError, parse_target

    host_env = next((v for v in HOST_VARIABLES if v == client.host_env), None)
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


def read_error_text(common: dict[str, Any]) -> str | None:
    """The pasted error: ``--error``, or ``--error-file`` (a file, or '-' for stdin), at most
    ``MAX_ERROR_TEXT`` characters; ``None`` when neither is given."""
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


def check_output_path(path: str | None) -> None:
    """``-o FILE``: refused before any probe runs when it could not be written (exit 2)."""
    if not path:
        return
    from ollama_doctor.report import OutputError, check_writable

    try:
        check_writable(path)
    except OutputError as exc:
        fail_usage(str(exc))
