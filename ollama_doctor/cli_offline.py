"""The commands that need no server: ``probes``, ``explain``, ``logs``, ``schema``, and
``emulate`` (which is one)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ollama_doctor.cli_app import EXIT_FAIL, EXIT_OK, app, fail_usage
from ollama_doctor.cli_help import HelpCommand, complete_fault, complete_topic, examples
from ollama_doctor.cli_options import read_error_text


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
    wide = 1 + max(len(row["id"]) for row in rows)
    for row in rows:
        needs = ", ".join(row["needs"]) or "-"
        extra = " (opt-in)" if row["opt_in"] else ""
        _column(row["id"], [f"{row['title']}{extra}", row["description"],
                            f"needs: {needs}; finds: {', '.join(row['causes'])}"], wide)
    print(f"\nClient families (--client NAME; default {DEFAULT.name}):")
    wide = 1 + max(len(client.name) for client in CLIENTS)
    for client in CLIENTS:
        _column(client.name, [client.label, *_client_rules(client)], wide)


def _column(name: str, lines: list[str], wide: int) -> None:
    """``name`` in a column ``wide`` characters wide, then ``lines`` beside it, each wrapped
    at word boundaries to the terminal's width (``COLUMNS`` when output is not a terminal;
    not at all when neither says), as the report wraps its prose."""
    import shutil
    import textwrap

    width = shutil.get_terminal_size((0, 0)).columns
    for number, line in enumerate(lines):
        head = f"{name if number == 0 else '':<{wide}}"
        if width <= wide + 20:
            print(head + line)
            continue
        print(textwrap.fill(line, width, initial_indent=head, subsequent_indent=" " * wide,
                            break_long_words=False, break_on_hyphens=False))


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
    for pitfall in client.pitfalls:  # what check --python/--project matches by version
        versions = pitfall.versions or "all versions"
        lines.append(f"pitfall ({versions}, {pitfall.cause}): {pitfall.message}")
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
        text = read_error_text({"error": error, "error_file": error_file, "log_file": None})
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

    from ollama_doctor.logs import judge_log

    code, judged = judge_log(log_file, lines, sys.stdin, dict(os.environ), Path("/"))
    if isinstance(judged, str):
        fail_usage(judged.strip())
    elif json_out:
        import json

        sys.stdout.write(json.dumps(judged, indent=2, ensure_ascii=False) + "\n")
    else:  # check's renderer: the terminal's width, colour on a terminal
        from ollama_doctor import render

        render.logs_report(judged, render.console())
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
