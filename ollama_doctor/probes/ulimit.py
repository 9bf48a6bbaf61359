"""``ulimit``: open-file limits of this process and of the local Ollama server, against the
concurrency the user expects.

Checks:

1. this process's ``RLIMIT_NOFILE`` soft and hard limits and ``RLIMIT_NPROC`` (``resource``;
   the client the user runs from this shell inherits them). Windows has no rlimits: skipped
   with the reason;
2. each Ollama server on this machine (``--server-pid``, else found by name): ``Max open
   files`` and ``Max processes`` from ``/proc/<pid>/limits`` and the descriptors it holds now
   (psutil ``num_fds``). macOS has no ``/proc``: skipped with ``launchctl limit maxfiles`` to
   run instead;
3. the expected concurrency: ``--concurrency``, else ``OLLAMA_NUM_PARALLEL`` from this
   environment. Each call holds about 2 descriptors on the server (the client's connection and
   the server's connection to its runner; docs/ollama-wire.md §4.5 — Go's ``accept4: too many open
   files``) plus one on the runner, beside what the server holds already.

Decisions (``fd-limit-low``; no user reports exist, so without direct evidence it ranks low):

- error (medium): the expected concurrency needs more descriptors than the server's soft
  limit allows (or than this process's, for the client side);
- error (high): the server already holds 90 % or more of its limit;
- warning (low): the server's soft limit is below 4096, the guide's threshold;
- note: this process's soft limit is below 4096 (macOS shells start at 256).

The fix names the launcher: a shell (``ulimit -n``), systemd (``LimitNOFILE=`` in the unit's
``[Service]`` section), Docker (``--ulimit nofile=``); the detected one comes first.

Facts: ``this_process`` (nofile, nproc), ``servers`` (pid, nofile, nproc, open_fds,
launcher), ``concurrency`` (value, source, per_call), ``threshold``.

Cause id: ``fd-limit-low``.
"""

from __future__ import annotations

import sys
from typing import Any

from ollama_doctor import remedies as R
from ollama_doctor.cgroups import ParseError, parse_proc_limits, read_bounded
from ollama_doctor.context import Context
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status

THRESHOLD = 4096
FDS_PER_CALL = 2  # on the server: the client's connection and the one to the runner
RESERVE = 32  # listeners, logs, the model file, libraries opened later
BUSY_FRACTION = 0.9
RECOMMENDED = 65536
MAX_SERVERS = 4


def _fmt(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def this_process() -> dict[str, Any]:
    """This process's rlimits, or why they cannot be known here."""
    try:
        import resource
    except ImportError:
        return {"skipped": "Windows has no RLIMIT_NOFILE (a process may hold ~16 million "
                           "handles); nothing to check"}
    out: dict[str, Any] = {}
    for key, name in (("nofile", "RLIMIT_NOFILE"), ("nproc", "RLIMIT_NPROC")):
        which = getattr(resource, name, None)
        if which is None:
            out[key] = {"skipped": f"{name} does not exist on {sys.platform}"}
            continue
        try:
            soft, hard = resource.getrlimit(which)
        except (OSError, ValueError) as exc:
            out[key] = {"skipped": f"getrlimit failed: {exc}"}
            continue
        inf = resource.RLIM_INFINITY
        out[key] = {"soft": None if soft == inf else soft, "hard": None if hard == inf else hard}
    return out


def _open_fds(pid: int) -> tuple[int | None, str | None]:
    import psutil

    try:
        proc = psutil.Process(pid)
        if hasattr(proc, "num_fds"):
            return int(proc.num_fds()), None
        return None, f"not countable on {sys.platform}"
    except psutil.AccessDenied:
        return None, "AccessDenied: cannot count its descriptors (run as its user or root)"
    except psutil.NoSuchProcess:
        return None, "the process exited"
    except (OSError, psutil.Error) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _launcher(ctx: Context, pid: int) -> str:
    """How the server was started, from its cgroup: systemd unit, container, or a shell."""
    read = read_bounded(ctx.path(f"/proc/{pid}/cgroup"))
    text = read.text or ""
    if any(m in text for m in ("docker", "kubepods", "libpod", "containerd")):
        return "docker"
    if "system.slice/" in text and ".service" in text:
        return "systemd"  # a system unit; user@.service sessions are shells
    return "shell"


def read_server(ctx: Context, server: Any) -> dict[str, Any]:
    pid = int(server.pid)
    row: dict[str, Any] = {"pid": pid, "name": server.name}
    if sys.platform == "win32":
        row["skipped"] = "Windows has no per-process open-file limit to read"
        return row
    if sys.platform == "darwin":
        row["skipped"] = ("macOS has no /proc: another process's limits are not readable; run "
                          "`launchctl limit maxfiles` to see the system's")
    else:
        shown = f"/proc/{pid}/limits"
        read = read_bounded(ctx.path(shown), shown=shown)
        if read.text is None:
            row["skipped"] = f"cannot read {shown}: {read.error}"
        else:
            try:
                limits = parse_proc_limits(read.text)
            except ParseError as exc:
                row["skipped"] = f"cannot parse {shown}: {exc}"
            else:
                if "Max open files" in limits:
                    row["nofile"] = limits["Max open files"].to_dict()
                else:
                    row["skipped"] = f"{shown} has no 'Max open files' line"
                if "Max processes" in limits:
                    row["nproc"] = limits["Max processes"].to_dict()
    fds, why = _open_fds(pid)
    row["open_fds"] = fds
    if why:
        row["open_fds_note"] = why
    row["launcher"] = _launcher(ctx, pid)
    return row


def expected_concurrency(ctx: Context) -> tuple[int | None, str | None]:
    if ctx.options.concurrency is not None:
        return max(ctx.options.concurrency, 0), "--concurrency"
    raw = ctx.env.get("OLLAMA_NUM_PARALLEL", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw), "OLLAMA_NUM_PARALLEL"
    return None, None


def allowed_calls(soft: int, open_now: int | None, per_call: int = FDS_PER_CALL) -> int:
    """Concurrent calls a soft limit leaves room for, beside what is open now."""
    base = (open_now or 0) + RESERVE
    return max((soft - base) // per_call, 0)


def fixes(launcher: str, hard: int | None) -> list[FixStep]:
    target = RECOMMENDED
    shell_note = ("" if hard is None or hard >= target else
                  f" (the hard limit is {hard}: raise it first as root, in "
                  "/etc/security/limits.conf, or use a value up to it)")
    steps = {
        "shell": FixStep("Started from a shell: raise the limit in that shell, then start the "
                         f"server from it{shell_note}.",
                         (R.sh(f"ulimit -n {target}"), R.sh("ollama serve"))),
        "systemd": FixStep("Started by systemd: set LimitNOFILE in the unit's [Service] "
                           "section, then restart.",
                           (R.systemd_setting(f"LimitNOFILE={target}"),
                            R.sh("sudo systemctl restart ollama"))),
        "docker": FixStep("Started in a container: give it a higher limit when you create it "
                          f"(compose: ulimits: {{nofile: {{soft: {target}, hard: {target}}}}}).",
                          (R.docker_run(f"--ulimit nofile={target}:{target}", "-d",
                                        "-p 11434:11434", "-v ollama:/root/.ollama",
                                        "--name ollama"),)),
    }
    order = [launcher] + [k for k in ("systemd", "docker", "shell") if k != launcher]
    return [steps[k] for k in order if k in steps]


def _server_findings(row: dict[str, Any], expected: int | None, source: str | None
                     ) -> list[Finding]:
    nofile = row.get("nofile")
    if not nofile or nofile.get("soft") is None:
        return []
    soft, hard = int(nofile["soft"]), nofile.get("hard")
    open_now = row.get("open_fds")
    pid = row["pid"]
    allowed = allowed_calls(soft, open_now)
    evidence: dict[str, Any] = {"pid": pid, "nofile": nofile, "open_fds": open_now,
                                "allowed_calls": allowed, "per_call": FDS_PER_CALL}
    fix = fixes(row.get("launcher", "shell"), hard)
    if open_now is not None and open_now >= BUSY_FRACTION * soft:
        return [Finding(
            "fd-limit-low", Severity.ERROR,
            f"The Ollama server (pid {pid}) holds {open_now} descriptors of its limit of "
            f"{soft}: new connections fail with 'too many open files'.",
            evidence, fix, Confidence.HIGH)]
    if expected is not None and expected > allowed:
        need = (open_now or 0) + RESERVE + FDS_PER_CALL * expected
        evidence.update({"expected_calls": expected, "source": source, "needed": need})
        return [Finding(
            "fd-limit-low", Severity.ERROR,
            f"The Ollama server (pid {pid}) may open only {soft} files, but {expected} "
            f"concurrent calls ({source}) need about {need} ({FDS_PER_CALL} per call plus "
            f"{(open_now or 0) + RESERVE} held or reserved): beyond about {allowed} calls, "
            "connections fail with 'too many open files'.",
            evidence, fix, Confidence.MEDIUM)]
    if soft < THRESHOLD:
        if expected is not None:
            evidence.update({"expected_calls": expected, "source": source})
        return [Finding(
            "fd-limit-low", Severity.WARNING,
            f"The Ollama server (pid {pid}) may open only {soft} files, below the "
            f"{THRESHOLD} the troubleshooting guide recommends: about {allowed} concurrent "
            "calls fit.", evidence, fix, Confidence.LOW)]
    return []


def _client_findings(mine: dict[str, Any], expected: int | None, source: str | None
                     ) -> list[Finding]:
    nofile = mine.get("nofile")
    if not isinstance(nofile, dict) or nofile.get("soft") is None:
        return []
    soft, hard = int(nofile["soft"]), nofile.get("hard")
    allowed = allowed_calls(soft, None, per_call=1)
    evidence = {"this_process": nofile, "allowed_calls": allowed}
    raise_it = FixStep("Raise the limit in the shell that starts your client.",
                       (R.sh(f"ulimit -n {min(RECOMMENDED, hard) if hard else RECOMMENDED}"),))
    if expected is not None and expected > allowed:
        return [Finding(
            "fd-limit-low", Severity.ERROR,
            f"This shell's open-file limit is {soft}: a client started from it cannot hold "
            f"{expected} concurrent connections ({source}); about {allowed} fit.",
            {**evidence, "expected_calls": expected, "source": source}, [raise_it],
            Confidence.MEDIUM)]
    if soft < THRESHOLD:
        return [Finding(
            "fd-limit-low", Severity.INFO,
            f"This shell's open-file limit is {soft}, below {THRESHOLD}: a client started from "
            f"it can hold about {allowed} connections at once.", evidence, [raise_it],
            Confidence.LOW)]
    return []


def run(ctx: Context) -> Outcome:
    from ollama_doctor.probes.resources import server_is_local

    facts: dict[str, Any] = {"threshold": THRESHOLD}
    mine = this_process()
    facts["this_process"] = mine
    expected, source = expected_concurrency(ctx)
    facts["concurrency"] = {"value": expected, "source": source, "per_call": FDS_PER_CALL}

    _, servers, server_error = server_is_local(ctx)
    if server_error:
        facts["server_lookup_error"] = server_error
    rows = [read_server(ctx, s) for s in servers[:MAX_SERVERS]]
    facts["servers"] = rows
    if len(servers) > MAX_SERVERS:
        facts["servers_not_read"] = len(servers) - MAX_SERVERS

    findings: list[Finding] = []
    for row in rows:
        findings += _server_findings(row, expected, source)
    findings += _client_findings(mine, expected, source)

    parts: list[str] = []
    nofile = mine.get("nofile")
    if isinstance(nofile, dict) and "soft" in nofile:
        parts.append(f"this process: {_fmt(nofile['soft'])}/{_fmt(nofile['hard'])} open files")
    for row in rows:
        if "nofile" in row:
            held = f", {row['open_fds']} open" if row.get("open_fds") is not None else ""
            parts.append(f"server pid {row['pid']}: {_fmt(row['nofile']['soft'])}/"
                         f"{_fmt(row['nofile']['hard'])}{held}")
        else:
            parts.append(f"server pid {row['pid']}: {row.get('skipped', 'unknown')}")
    if not rows:
        parts.append("no Ollama server on this machine to inspect")
    if expected is not None:
        parts.append(f"{expected} concurrent calls expected ({source})")

    unread = [r for r in rows if "skipped" in r]
    if "skipped" in mine and all("nofile" not in r for r in rows):
        return Outcome(Status.SKIP, f"skipped: {mine['skipped']}", facts, findings)
    return Outcome.from_findings("; ".join(parts), facts, findings,
                                 floor=Status.WARN if unread else Status.PASS)
