"""The command line: wiring only (options → context → run → diagnose → render/export → exit).

Exit codes: 0 no error-level cause (warnings allowed; ``--strict`` fails them too); 1 an
error-level cause was found or a probe crashed; 2 bad usage or input. Heavy modules (httpx,
rich, psutil, dnspython) are imported inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer

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

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Find out why calls to an Ollama server fail."""


# ---------------------------------------------------------------------------------------------
# Options shared by `check` and `probe`, declared once.

COMMON: list[inspect.Parameter] = []


def _opt(name: str, annotation: Any, default: Any) -> None:
    COMMON.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    default=default, annotation=annotation))


_opt("host", Annotated[str | None, typer.Option(
    "--host", help="Server URL as the client uses it (OLLAMA_HOST rules). Default: "
                   "$OLLAMA_HOST, else http://127.0.0.1:11434.")], None)
_opt("model", Annotated[str | None, typer.Option(
    "--model", "-m", help="The model your calls use. Warm-up loads it into memory "
                          "(it never pulls one).")], None)
_opt("timeout", Annotated[float, typer.Option(
    "--timeout", help="Seconds per network operation.")], 5.0)
_opt("client_timeout", Annotated[float | None, typer.Option(
    "--client-timeout", help="The timeout your own client uses, in seconds, if known.")], None)
_opt("load_timeout", Annotated[float, typer.Option(
    "--load-timeout", help="Seconds to wait for a model load (Ollama's own limit is 300).")],
    300.0)
_opt("header", Annotated[list[str] | None, typer.Option(
    "--header", help="A header your client sends, 'Name: value' (repeatable).")], None)
_opt("origin", Annotated[str | None, typer.Option(
    "--origin", help="The Origin your app sends (browser extension, web page, desktop app).")],
    None)
_opt("samples", Annotated[int, typer.Option(
    "--samples", help="Latency samples per phase.")], 5)
_opt("latency_threshold", Annotated[float | None, typer.Option(
    "--latency-threshold", help="Milliseconds of median time-to-first-byte that count as "
                                "high latency.")], None)
_opt("needs", Annotated[list[str] | None, typer.Option(
    "--needs", help="A capability your call needs: completion, tools, vision, embedding, "
                    "thinking, insert (repeatable).")], None)
_opt("cold", Annotated[bool, typer.Option(
    "--cold", help="Unload the model first, to time a true cold load.")], False)
_opt("discover", Annotated[bool, typer.Option(
    "--discover", help="In a container, also try where the host's server usually is "
                       "(host.docker.internal, the default gateway): one connect each.")], False)
_opt("nameserver", Annotated[list[str] | None, typer.Option(
    "--nameserver", help="DNS server to ask besides the system resolver, ADDR[:PORT] "
                         "(repeatable).")], None)
_opt("log_file", Annotated[str | None, typer.Option(
    "--log-file", help="An Ollama server log to read ('-' for stdin).")], None)
_opt("log_lines", Annotated[int, typer.Option(
    "--log-lines", help="How many of the log's last lines to read.")], 2000)
_opt("concurrency", Annotated[int | None, typer.Option(
    "--concurrency", help="How many calls your app makes at once.")], None)
_opt("load", Annotated[bool, typer.Option(
    "--load", help="check: also run the opt-in load probe.")], False)
_opt("load_call", Annotated[str, typer.Option(
    "--load-call", help="What the load probe sends: version (finds gateway limits) or "
                        "generate (fills the model queue).")], "version")
_opt("load_max_rate", Annotated[float, typer.Option(
    "--load-max-rate", help="Highest request rate the load probe tries, per second.")], 500.0)
_opt("load_max_requests", Annotated[int, typer.Option(
    "--load-max-requests", help="Most requests the load probe sends in all.")], 2000)
_opt("load_max_seconds", Annotated[float, typer.Option(
    "--load-max-seconds", help="Longest the load probe runs.")], 20.0)
_opt("error", Annotated[str | None, typer.Option(
    "--error", help="The error your client printed; its host becomes the target unless "
                    "--host is given.")], None)
_opt("error_file", Annotated[str | None, typer.Option(
    "--error-file", help="A file holding the error your client printed ('-' for stdin).")],
    None)
_opt("json_out", Annotated[bool, typer.Option(
    "--json", help="Print the JSON report to stdout, and nothing else there.")], False)
_opt("output", Annotated[str | None, typer.Option(
    "--output", "-o", help="Also write the report to FILE (.json or .md), atomically.")], None)
_opt("verbose", Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show facts, evidence and info notes.")], False)
_opt("strict", Annotated[bool, typer.Option(
    "--strict", help="Exit 1 on warnings too.")], False)
_opt("debug", Annotated[bool, typer.Option(
    "--debug", help="Show tracebacks of crashed probes.")], False)
_opt("server_pid", Annotated[list[int] | None, typer.Option(
    "--server-pid", hidden=True, help="Treat this process as the Ollama server.")], None)
_opt("fs_root", Annotated[str | None, typer.Option(
    "--fs-root", hidden=True, help="Read /proc, /sys and /etc under this folder.")], None)
_opt("candidate", Annotated[list[str] | None, typer.Option(
    "--candidate", hidden=True, help="A host --discover tries instead of the usual ones.")],
    None)


def with_common(func: Callable[..., int]) -> Callable[..., None]:
    """Give a command the shared options; they arrive as one dict, ``common``."""
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "common"]
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


@app.command()
@with_common
def check(common: dict[str, Any]) -> int:
    """Run every probe in order and print a ranked diagnosis."""
    from ollama_doctor.registry import REGISTRY

    ids = [s.id for s in REGISTRY if not s.opt_in or (s.id == "load" and common["load"])]
    return _run("check", ids, [], common)


@app.command()
@with_common
def probe(
    name: Annotated[str, typer.Argument(help="The probe to run (see `ollama-doctor probes`).")],
    common: dict[str, Any],
) -> int:
    """Run one probe (and, silently, what it needs) with its own diagnosis."""
    from ollama_doctor import registry

    if name not in registry.BY_ID:
        valid = ", ".join(s.id for s in registry.REGISTRY)
        fail_usage(f"unknown probe {name!r}; valid probes: {valid}")
    needed = [p for p in registry.closure(name) if p != name]
    return _run(f"probe {name}", [name], needed, common)


def _run(command: str, ids: list[str], prerequisites: list[str], common: dict[str, Any]) -> int:
    ctx = _context(common)
    if common["output"]:
        from ollama_doctor.report import OutputError, check_writable

        try:
            check_writable(common["output"])
        except OutputError as exc:
            fail_usage(str(exc))

    from ollama_doctor import diagnosis, render, report
    from ollama_doctor.runner import run_probes

    with render.progress("Diagnosing") as update:
        def on_event(name: str, result: Any) -> None:
            if result is None:
                update(name)

        results = run_probes(ctx, ids, prerequisites=prerequisites, on_event=on_event)
    ranked = diagnosis.rank(results)
    summary = diagnosis.summary(ranked, results, strict=common["strict"])
    doc = report.build(ctx, results, ranked, summary, command=command)

    if common["json_out"]:
        sys.stdout.write(report.to_json(doc))
    else:
        render.report(doc, render.console(), verbose=common["verbose"])
        if common["debug"]:
            for result in results:
                if result.error and result.error.traceback:
                    sys.stderr.write(f"--- {result.id}\n{result.error.traceback}")
    if common["output"]:
        fmt = report.output_format(common["output"])
        text = report.to_json(doc) if fmt == "json" else report.to_markdown(doc)
        try:
            report.write_atomic(common["output"], text)
        except OSError as exc:
            fail_usage(f"cannot write {common['output']!r}: {exc.strerror or exc}")
    return int(summary["exit_code"])


def _context(common: dict[str, Any]) -> Any:
    from pathlib import Path

    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import TargetError, parse_target

    env = dict(os.environ)
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
    for name in ("load_max_rate", "load_max_requests", "load_max_seconds"):
        if not common[name] > 0:
            fail_usage(f"--{name.replace('_', '-')} must be positive, not {common[name]}")
    headers: list[tuple[str, str]] = []
    for raw in common["header"] or []:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            fail_usage(f"invalid --header {raw!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))

    error_text = _error_text(common)
    analysis = None
    if error_text is not None:
        from ollama_doctor.errortext import analyse, target_from

        analysis = analyse(error_text)
    try:
        if common["host"] is not None:
            target = parse_target(common["host"], "option")
        elif analysis is not None and target_from(analysis.extracted):
            target = parse_target(target_from(analysis.extracted), "error-text")
        elif env.get("OLLAMA_HOST", "").strip():
            target = parse_target(env["OLLAMA_HOST"], "OLLAMA_HOST")
        else:
            target = parse_target(None)
    except TargetError as exc:
        fail_usage(str(exc))

    model, client_timeout = common["model"], common["client_timeout"]
    if analysis is not None:  # facts the pasted error holds fill in what was not given
        model = model or analysis.extracted.get("model")
        timed_out = {"slow-model-load", "connect-timeout"} & set(analysis.causes)
        if client_timeout is None and timed_out and analysis.extracted.get("elapsed_s"):
            client_timeout = float(analysis.extracted["elapsed_s"])
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
        debug=common["debug"])
    ctx = Context(target=target, options=options, env=env,
                  fs_root=Path(common["fs_root"] or "/"), error=analysis)
    ctx.deadline = ctx.clock() + 2 * options.timeout
    return ctx


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


@app.command("probes")
def probes_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the probes: name, title, what each needs and what it can find."""
    from ollama_doctor.registry import REGISTRY

    rows: list[dict[str, Any]] = [{"id": s.id, "title": s.title, "description": s.description,
             "needs": list(s.needs), "after": list(s.after), "opt_in": s.opt_in,
             "causes": list(s.causes)} for s in REGISTRY]
    if json_out:
        import json

        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        needs = ", ".join(row["needs"]) or "-"
        extra = " (opt-in)" if row["opt_in"] else ""
        print(f"{row['id']:<13} {row['title']}{extra}")
        print(f"{'':<13} {row['description']}")
        print(f"{'':<13} needs: {needs}; finds: {', '.join(row['causes'])}")


@app.command()
def explain(
    topic: Annotated[str | None, typer.Argument(
        help="An HTTP status (400, 401, 403, 404, 429, 500, 502, 503, 504) or a cause id.")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    error: Annotated[str | None, typer.Option(
        "--error", help="A client error message to read (offline: no network).")] = None,
    error_file: Annotated[str | None, typer.Option(
        "--error-file", help="A file holding the error ('-' for stdin).")] = None,
) -> None:
    """Look up a status code or cause offline: meaning, what to check, what to do, retry.

    With --error, read a client's error message instead: candidate causes, most likely first,
    and the facts it holds.
    """
    from ollama_doctor import explain as explainer

    if error is not None or error_file is not None:
        if topic is not None:
            fail_usage("give a topic or --error, not both")
        text = _error_text({"error": error, "error_file": error_file, "log_file": None})
        from ollama_doctor.errortext import analyse

        data = explainer.error_report(analyse(text or ""))
        if json_out:
            import json

            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            print(explainer.error_as_text(data))
        return
    if topic is None:
        fail_usage("explain needs a status code or a cause id, e.g. `explain 429`, "
                   "or --error TEXT")
    try:
        data = explainer.lookup(topic)
    except KeyError as exc:
        fail_usage(str(exc.args[0]))
    if json_out:
        import json

        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(explainer.as_text(data))


@app.command()
def logs(
    log_file: Annotated[str | None, typer.Option(
        "--log-file", help="The server log to read ('-' for stdin). Default: journalctl -u "
                           "ollama, ~/.ollama/logs/server.log, /var/log/ollama/.")] = None,
    lines: Annotated[int, typer.Option("--lines", help="How many of the last lines.")] = 2000,
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


@app.command()
def schema() -> None:
    """Print the JSON Schema of the report."""
    import json

    from ollama_doctor.report import schema as load

    print(json.dumps(load(), indent=2))


@app.command()
def emulate(
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 picks a free one).")] = 11434,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="A model to serve, NAME[:TAG][;size=2G;caps=completion,tools;ctx=4096] "
                        "(repeatable).")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", help="A fault to inject, NAME[=VALUE] (repeatable; see --list-faults).")]
    = None,
    list_faults: Annotated[bool, typer.Option("--list-faults", help="List faults.")] = False,
    log_file: Annotated[str | None, typer.Option(
        "--log-file", help="Append Ollama-format log lines here.")] = None,
    version: Annotated[str, typer.Option("--server-version", help="Version to report.")]
    = "0.33.0",
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
    try:
        models = [emulator.ModelSpec.parse(m) for m in model] if model else None
        faults = dict(emulator.parse_fault(f) for f in fault or [])
    except ValueError as exc:
        fail_usage(str(exc))
    config = emulator.EmulatorConfig(bind=bind, port=port, faults=faults, log_file=log_file,
                                     version=version)
    if models is not None:
        config.models = models
    try:
        emulator.serve_forever(config, announce=lambda url: print(url, flush=True))
    except OSError as exc:
        fail_usage(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 instead of tracebacks or usage boxes."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="ollama-doctor", standalone_mode=False)
    except UsageProblem as exc:
        _die(str(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _CLICK_ERROR as exc:
        _die(_with_value(exc.format_message(), exc,  # type: ignore[attr-defined]
                         sys.argv[1:] if argv is None else argv))
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("ollama-doctor: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_FAIL)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


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
    sys.stderr.write(f"ollama-doctor: error: {message}\n")
    sys.exit(EXIT_USAGE)
