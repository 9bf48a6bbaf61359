"""The commands that keep running: ``watch`` (check again and again, print what changed) and
``exporter`` (Prometheus /probe and /metrics)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ollama_doctor import cli_options
from ollama_doctor.cli_app import app, fail_usage
from ollama_doctor.cli_help import HelpCommand, complete_probe_list, examples
from ollama_doctor.cli_options import check_output_path, with_common


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
    check_output_path(common["output"])
    ctx = cli_options.build_context(common)
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
