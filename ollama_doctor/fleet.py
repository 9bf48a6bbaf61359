"""``check --targets FILE``: many servers at once, one summary table, the worst exit code.

A targets file is either plain text, one target a line (``URL [model=NAME]``; ``#`` starts a
comment), or a Prometheus ``file_sd`` JSON file (``[{"targets": [...], "labels": {...}}]``;
the label ``model`` or ``__param_model`` names the model), so the list Prometheus scrapes and the
list the doctor checks can be one file. Every target gets the fleet probe set by default
(``session.FLEET_PROBES``); at most ``parallel`` checks run at a time, each bounded by its own
deadline, so one slow server cannot hold up the table. From ``PROCESS_THRESHOLD`` targets on,
the list is split across one forked worker process per core (a check is mostly Python work,
which one process runs on one core at a time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ollama_doctor.session import FLEET_PROBES, FLEET_SAMPLES, problems, run_check

MAX_TARGETS = 100_000
DEFAULT_SAMPLES = 5  # check's --samples default
MAX_FILE_BYTES = 16 * 1024 * 1024


class TargetsError(ValueError):
    """A targets file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class FleetTarget:
    url: str
    model: str | None = None


def load_targets(path: str) -> list[FleetTarget]:
    """Read a targets file (text or file_sd JSON); every target is validated before any runs."""
    from ollama_doctor.target import TargetError, parse_target

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TargetsError(f"cannot read --targets {path!r}: {exc.strerror or exc}") from None
    if len(text) > MAX_FILE_BYTES:
        raise TargetsError(f"--targets {path!r} is larger than {MAX_FILE_BYTES} bytes")
    stripped = text.lstrip()
    entries: list[tuple[str, FleetTarget]] = []
    if stripped.startswith(("[", "{")):
        entries = _file_sd(path, text)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            url, *rest = line.split()
            model = None
            for word in rest:
                key, sep, value = word.partition("=")
                if key != "model" or not sep or not value:
                    raise TargetsError(f"{path}:{number}: expected 'URL [model=NAME]', "
                                       f"got {word!r}")
                model = value
            entries.append((f"{path}:{number}", FleetTarget(url, model)))
    if not entries:
        raise TargetsError(f"--targets {path!r} names no target")
    if len(entries) > MAX_TARGETS:
        raise TargetsError(f"--targets {path!r} names {len(entries)} targets; at most "
                           f"{MAX_TARGETS}")
    for where, entry in entries:
        try:
            parse_target(entry.url, "option")
        except TargetError as exc:
            raise TargetsError(f"{where}: {exc}") from None
    return [entry for _, entry in entries]


def _file_sd(path: str, text: str) -> list[tuple[str, FleetTarget]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TargetsError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TargetsError(f"{path}: expected a file_sd list of {{targets, labels}} groups")
    out: list[tuple[str, FleetTarget]] = []
    for index, group in enumerate(data):
        where = f"{path}: group {index + 1}"
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise TargetsError(f"{where}: expected {{\"targets\": [...], \"labels\": {{...}}}}")
        labels = group.get("labels") or {}
        if not isinstance(labels, dict):
            raise TargetsError(f"{where}: labels must be an object")
        model = labels.get("model") or labels.get("__param_model")
        for url in group["targets"]:
            if not isinstance(url, str) or not url.strip():
                raise TargetsError(f"{where}: every target must be a non-empty string")
            out.append((where, FleetTarget(url.strip(), str(model) if model else None)))
    return out


def check_all(targets: Sequence[FleetTarget], *, parallel: int = 32,
              probes: Iterable[str] = FLEET_PROBES, timeout: float = 5.0,
              run: Callable[..., dict[str, Any]] = run_check, processes: int | None = None,
              **kwargs: Any) -> list[dict[str, Any]]:
    """Reports for every target, in the file's order. A crash becomes a failing report.

    A check is mostly Python work between short waits, and one process runs Python on one core
    at a time: from ``PROCESS_THRESHOLD`` targets on, the list is split across one worker
    process per core (``processes`` overrides), each running its share of ``parallel``.
    """
    ids = list(probes)
    workers = _workers(len(targets), processes)
    if workers > 1:
        return _across_processes(targets, workers, parallel=parallel, probes=ids,
                                 timeout=timeout, run=run, **kwargs)
    kwargs.setdefault("shared", {})

    def one(entry: FleetTarget) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            doc = run(entry.url, model=entry.model, probes=ids, timeout=timeout, **kwargs)
        except Exception as exc:  # a bug must not lose the other 999 reports
            doc = {"target": {"url": entry.url, "model": entry.model},
                   "checks": [], "diagnosis": [],
                   "summary": {"status": "failing", "exit_code": 1, "top_cause": None,
                               "headline": f"check crashed: {type(exc).__name__}: {exc}",
                               "checks": {}, "crashed": ["fleet"]}}
        doc.setdefault("fleet", {})["elapsed_s"] = round(time.perf_counter() - started, 3)
        return doc

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets))),
                            thread_name_prefix="od-fleet") as pool:
        return list(pool.map(one, targets))


PROCESS_THRESHOLD = 200  # targets from which a fleet run uses one process per core
MAX_PROCESSES = 8


def _workers(count: int, processes: int | None) -> int:
    import multiprocessing
    import os
    import threading

    if processes is not None:
        wanted = processes
    elif count < PROCESS_THRESHOLD:
        return 1
    else:
        wanted = min(MAX_PROCESSES, len(os.sched_getaffinity(0))
                     if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    # fork copies the loaded modules for free, but only a process without other threads may
    # fork safely; elsewhere stay in one process
    if ("fork" not in multiprocessing.get_all_start_methods()
            or threading.active_count() > 1):
        return 1
    return max(1, min(wanted, count))


def _across_processes(targets: Sequence[FleetTarget], workers: int, *, parallel: int,
                      **kwargs: Any) -> list[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # interleaved shares: healthy and failing targets spread evenly whatever the file's order
    shares = [list(targets[i::workers]) for i in range(workers)]
    per_worker = max(1, -(-parallel // workers))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(check_all, share, parallel=per_worker, processes=1, **kwargs)
                   for share in shares]
        results = [f.result() for f in futures]
    out: list[dict[str, Any]] = [{} for _ in targets]
    for i, reports in enumerate(results):
        out[i::workers] = reports
    return out


def exit_code(reports: Sequence[dict[str, Any]]) -> int:
    return max((int(r["summary"]["exit_code"]) for r in reports), default=0)


def table(reports: Sequence[dict[str, Any]]) -> str:
    """target, status, top cause, code, time — one line each, then a count by status."""
    rows = [("TARGET", "STATUS", "TOP CAUSE", "CODE", "TIME")]
    for doc in reports:
        top = next(iter(problems(doc)), None)
        code = "" if top is None or top.get("code") is None else str(top["code"])
        elapsed = doc.get("fleet", {}).get("elapsed_s")
        rows.append((doc["target"]["url"] + (f" ({doc['target']['model']})"
                                             if doc["target"].get("model") else ""),
                     doc["summary"]["status"], top["cause"] if top else "-", code or "-",
                     "-" if elapsed is None else f"{elapsed:.2f}s"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
             for row in rows]
    counts: dict[str, int] = {}
    for doc in reports:
        counts[doc["summary"]["status"]] = counts.get(doc["summary"]["status"], 0) + 1
    lines.append("")
    lines.append(f"{len(reports)} target{'s' if len(reports) != 1 else ''}: " + ", ".join(
        f"{counts[s]} {s}" for s in ("healthy", "degraded", "failing") if s in counts))
    return "\n".join(lines) + "\n"


def run(path: str, *, parallel: int, probes: Iterable[str] | None = None,
        **kwargs: Any) -> list[dict[str, Any]]:
    """Every report of a ``check --targets`` run, in the file's order.

    Raises ``TargetsError``/``ValueError`` for bad input (the caller prints one line, exit 2).
    """
    from ollama_doctor.session import probe_ids

    if not 1 <= parallel <= 1024:
        raise TargetsError(f"--parallel must be between 1 and 1024, not {parallel}")
    ids = probe_ids(probes or FLEET_PROBES)
    targets = load_targets(path)
    return check_all(targets, parallel=parallel, probes=ids, **kwargs)


def to_json(reports: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(reports), indent=2, ensure_ascii=False) + "\n"


def command(common: dict[str, Any], path: str, parallel: int,
            make_context: Callable[[dict[str, Any]], Any],
            fail: Callable[[str], Any]) -> int:
    """``check --targets``: the shared options (headers, timeouts, -m as the default model)
    apply to every target; a line's ``model=`` overrides ``-m``."""
    import sys

    if common.get("host"):
        fail("give --host or --targets, not both")
    output = common.get("output")
    if output:
        from ollama_doctor.report import OutputError, check_writable, output_format

        try:
            check_writable(output)
            fmt = output_format(output)
        except OutputError as exc:
            fail(str(exc))
    ctx = make_context(common)  # validates the shared options once, exits 2 on bad ones
    options = ctx.options
    if common.get("samples") == DEFAULT_SAMPLES:  # not asked for: the fleet's cheaper default
        import dataclasses

        options = dataclasses.replace(options, samples=FLEET_SAMPLES)
    try:
        reports = run(path, parallel=parallel, options=options, env=ctx.env,
                      timeout=ctx.options.timeout, strict=bool(common.get("strict")))
    except ValueError as exc:
        fail(str(exc))
        return 2
    sys.stdout.write(to_json(reports) if common.get("json_out") else table(reports))
    if output:
        from ollama_doctor.report import write_atomic

        text = to_json(reports) if fmt == "json" else f"```text\n{table(reports)}```\n"
        try:
            write_atomic(output, text)
        except OSError as exc:
            fail(f"cannot write {output!r}: {exc.strerror or exc}")
    return exit_code(reports)
