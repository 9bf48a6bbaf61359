"""``check`` and ``probe``: run the probes, diagnose, print the report (and write ``-o``),
and the exit code. ``check`` adds the user's own request body, client libraries, retry policy
and the OpenAI-compatible path (``_CheckExtras``)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ollama_doctor import cli_options
from ollama_doctor.cli_app import app, fail_usage
from ollama_doctor.cli_help import HelpCommand, complete_probe, examples
from ollama_doctor.cli_options import check_output_path, with_common


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
        return fleet.command(common, targets, parallel, cli_options.build_context,
                             fail_usage)

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
        if (self.endpoint is not None or self.send) and self.request is None:
            fail_usage("--endpoint and --send go with --request FILE")
        if self.client_retries is not None and not 0 <= self.client_retries <= 100:
            fail_usage(f"--client-retries must be between 0 and 100, not {self.client_retries}")
        if self.request is not None:
            from ollama_doctor import request_check as rc  # only then: ~20 ms of imports

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
        from ollama_doctor import retry  # here: most runs judge no policy

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
    "warmup": ("-m", "--cold", "--load-timeout", "--client-timeout", "--prompt-tokens"),
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
    ctx = cli_options.build_context(common)  # looked up at each call: bench_check times it
    if extras is not None and extras.wants_v1(ctx) and "v1" not in ids:
        ids = [*ids, "v1"]
    check_output_path(common["output"])

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

    if not render.live():  # piped: no status line to keep up to date
        return run_probes(ctx, ids, prerequisites=prerequisites)
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
