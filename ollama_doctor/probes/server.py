"""``server``: the Ollama server on this machine: processes, listeners, environment and log.

Judged after ``reachability`` (it reads that probe's addresses, connects and ``/api/version``)
and ``auth`` (a 403 on the Origin makes a differing ``OLLAMA_ORIGINS`` an error). Its slow local
work — the process scan, the target port's sockets, ``ollama -v``, the server's log — is its
``prepare`` step, which the runner runs while models and auth answer (``Gathered``).
A server is a process named ``ollama serve`` in this network namespace, or a pid named with
``--server-pid``; ``ollama serve`` processes of other network namespaces (other containers
sharing the PID namespace) have their own loopback and are listed apart, never counted. With
no server the probe still reads the target's sockets when another address of this machine was
refused (check 2), and a log given with ``--log-file``; otherwise it is skipped with the reason.

Checks, when the target is this machine (loopback, or an address of one of its interfaces):

1. **Processes and listeners** (psutil): how many servers, which user, which addresses and
   ports each listens on, and every process listening on the target's port. Two servers, or the
   target's port held by another process → ``wrong-instance`` (warning). The server listening on
   other ports only → ``wrong-port-scheme`` naming them (warning when the target is refused,
   else info).
2. **bound-to-loopback**: the target is a non-loopback address of this machine, connections to
   it are refused, and every socket on that port is on loopback (``127.0.0.1``/``[::1]``) →
   critical, proved from the sockets whatever holds them (a renamed binary, a wrapper, a Python
   or Docker proxy), with the holder named when psutil can read it ("a process we cannot
   inspect" otherwise). The fix says where ``OLLAMA_HOST=0.0.0.0:PORT`` must be set for the way
   the server was started (systemd unit, macOS app, Windows tray app, Docker, a shell): a
   shell's export never reaches a service; for ``docker-proxy`` on loopback, publish the port on
   every interface.
3. **Version**: ``ollama -v`` when the binary is on ``PATH`` (with a timeout), against the
   target's ``/api/version``; a different version means another installation (info).
4. **Environment**: the server's own environment from ``/proc/<pid>/environ`` (bounded), else
   the log's ``server config env=map[…]`` line. Each ``OLLAMA_*`` or proxy variable set in this
   shell with another value there → ``setting-not-applied``: a warning, an error when the
   difference explains what fails (``OLLAMA_HOST=0.0.0.0`` here but the server on loopback;
   ``OLLAMA_ORIGINS`` here while the ``auth`` probe, when it already ran, saw
   ``origin-forbidden``; a raised ``OLLAMA_LOAD_TIMEOUT`` while the log shows load timeouts).
   Values are redacted.
5. **Log**: ``--log-file`` (``-`` = stdin), else ``journalctl -u ollama``, else
   ``~/.ollama/logs/server.log`` or ``/var/log/ollama/*.log``; the last ``log_lines`` lines,
   bounded in time and memory, classified by ``logs.SIGNATURES``; one finding per cause.

Facts: ``processes`` (pid, user, listeners, parent, launcher, network namespace),
``other_namespaces`` (``ollama serve`` processes of other network namespaces), ``target``
(addresses, which are this machine's, refused), ``listeners`` (every socket on the target's
port), ``binary``, ``api_version``, ``environment`` (source, the relevant variables redacted,
``differences``), ``log`` (source, lines and bytes read, matches per signature, start lines,
load times).

Cause ids: ``bound-to-loopback``, ``wrong-instance``, ``wrong-port-scheme``,
``setting-not-applied``, and from the log ``out-of-memory``, ``runner-crashed``,
``slow-model-load``, ``gpu-offload``, ``prompt-truncated``, ``fd-limit-low``,
``ollama-outdated``, ``server-error``, ``rate-limited``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ollama_doctor import logread, net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.facts import AuthFacts, ReachabilityFacts
from ollama_doctor.local import (
    Launcher,
    Listener,
    ServerProcess,
    covers,
    find_servers,
    is_loopback_ip,
    launcher_of,
    launcher_of_pid,
    listeners_on,
    local_addresses,
    normalise_ip,
    parse_environ,
    read_proc,
    servers_elsewhere,
)

if TYPE_CHECKING:  # classifying a log compiles the signature table: only when a log is read
    from ollama_doctor import logs
from ollama_doctor.redact import MASK, is_secret_name, redact_text, redact_url
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status

# Variables only clients read: the server never sees them, so they are not compared.
CLIENT_ONLY = frozenset({"OLLAMA_API_KEY", "OLLAMA_AUTH", "OLLAMA_NOHISTORY", "OLLAMA_EDITOR"})
PROXY_NAMES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"})
# The server's value when the variable is unset (envconfig/config.go; docs/ollama-wire.md §3).
DEFAULTS: dict[str, str] = {
    "OLLAMA_HOST": "127.0.0.1:11434", "OLLAMA_KEEP_ALIVE": "5m", "OLLAMA_LOAD_TIMEOUT": "5m",
    "OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_QUEUE": "512", "OLLAMA_MAX_LOADED_MODELS": "0",
    "OLLAMA_CONTEXT_LENGTH": "0", "OLLAMA_DEBUG": "INFO", "OLLAMA_GPU_OVERHEAD": "0",
    "OLLAMA_KV_CACHE_TYPE": "", "OLLAMA_ORIGINS": "", "OLLAMA_MODELS": "",
}
DURATIONS = frozenset({"OLLAMA_KEEP_ALIVE", "OLLAMA_LOAD_TIMEOUT"})
BOOLEANS = frozenset({"OLLAMA_FLASH_ATTENTION", "OLLAMA_NOPRUNE", "OLLAMA_NO_CLOUD",
                      "OLLAMA_SCHED_SPREAD", "OLLAMA_MULTIUSER_CACHE", "OLLAMA_NEW_ENGINE",
                      "OLLAMA_VULKAN", "OLLAMA_IGPU_ENABLE", "OLLAMA_INTEL_GPU",
                      "OLLAMA_DEBUG_LOG_REQUESTS"})
VERSION_TIMEOUT = 5.0


def run(ctx: Context) -> Outcome:
    return inspect(ctx)


@dataclass
class Gathered:
    """The probe's local work, which reads no other probe: the runner starts it beside the
    network probes (``prepare``), so only the judgement waits for reachability and auth.
    What is ``None`` was not looked at yet: the judgement looks then, as it always did."""

    servers: list[ServerProcess]
    elsewhere: list[ServerProcess]
    error: str | None
    launchers: dict[int, Launcher]
    listeners: tuple[list[Listener], str | None] | None = None  # the target port's sockets
    version_run: tuple[str | None, logread.CommandResult | None] | None = None  # ollama -v
    log: tuple[logread.LogText | None, logs.Classification | None] | None = None


def prepare(ctx: Context) -> Gathered:
    """The runner's prepare step: the process scan, and when a server runs and the target may
    be this machine, the target port's sockets, ``ollama -v`` and the server's log — the slow
    part of this probe (psutil's socket table, two subprocesses), done while the network
    probes run. A target that turns out to be elsewhere costs that work, never a finding."""
    found = _gather(ctx)
    if found.servers and _maybe_here(ctx):
        found.listeners = listeners_on(ctx.target.port)
        found.version_run = _version_run(ctx, None)
        found.log = _read_log(ctx, None, None)
    elif ctx.options.log_file:
        found.log = _read_log(ctx, None, None)
    return found


def _gather(ctx: Context) -> Gathered:
    servers, elsewhere, error = _find(ctx)
    return Gathered(servers, elsewhere, error, {s.pid: launcher_of(ctx, s) for s in servers})


def _maybe_here(ctx: Context) -> bool:
    """Whether the target may be this machine, before reachability has answered: loopback,
    the unspecified address, or an address (a name's, from the run's one shared resolution,
    ``Context.resolve``) of one of this machine's interfaces."""
    target = ctx.target
    if target.is_loopback or target.is_unspecified:
        return True
    address = normalise_ip(target.dial_host)
    raw = [address] if address else ctx.resolve(target.dial_host, target.port).addresses
    ifaces, _ = local_addresses()
    return any(a in ifaces or is_loopback_ip(a)
               for a in (normalise_ip(x) for x in raw) if a is not None)


def inspect(ctx: Context, *, runner: logread.Runner | None = None,
            stdin: TextIO | None = None) -> Outcome:
    """``run`` with the command runner (``ollama -v``, ``journalctl``) and stdin injectable.

    The local work comes from the runner's prepare step when it ran (``Context.once``); called
    on its own (a test), the probe scans here and looks at the rest when it needs it."""
    from ollama_doctor.runner import prepare_key

    seen = ctx.once(prepare_key("server"), lambda: _gather(ctx))
    facts: dict[str, Any] = {}
    notes: list[str] = []
    servers, elsewhere, error = seen.servers, seen.elsewhere, seen.error
    if error:
        notes.append(error)
        facts["process_error"] = error
    if elsewhere:
        facts["other_namespaces"] = [{"pid": s.pid, "name": s.name, "netns": s.netns}
                                     for s in elsewhere]
    notes += [f"pid {s.pid} (--server-pid) runs in another network namespace ({s.netns}): "
              "its sockets and its loopback are not this machine's"
              for s in servers if s.same_netns is False]
    if not servers:
        facts["processes"] = []
        reason = _no_server_reason(ctx, error, elsewhere)
        by_socket, holder = _listeners_alone(ctx, facts, notes)
        return _without_server(ctx, reason, facts, notes, runner, stdin, by_socket, holder,
                               seen)

    reach = ctx.facts(ReachabilityFacts)
    api_version = reach.version if reach is not None else None
    facts["api_version"] = api_version
    view = _target_view(ctx, reach)
    facts["target"] = view.to_dict()
    launchers = seen.launchers
    facts["processes"] = [{**s.details(), "launcher": launchers[s.pid].to_dict()}
                          for s in servers]
    notes += [f"pid {s.pid}: {s.access_error}" for s in servers if s.access_error]

    if not view.this_machine:
        summary = (f"{_count(servers)} here, but the target {ctx.target.dial_host} is not this "
                   "machine: its server is not examined")
        if not ctx.options.log_file:
            return Outcome(Status.PASS, summary, facts)
        return _finish(summary, facts, _log_only(ctx, facts, runner, stdin, notes, seen),
                       notes)

    found: list[Finding] = []
    port_listeners, listen_error = seen.listeners or listeners_on(ctx.target.port)
    facts["listeners"] = [lst.to_dict() for lst in port_listeners]
    if listen_error:
        facts["listeners_error"] = listen_error
        notes.append(listen_error)
    main = _serving(servers, view) or servers[0]
    found += _listener_findings(ctx, servers, view, port_listeners, launchers)

    binary, version_findings = _binary(ctx, seen.version_run or _version_run(ctx, runner),
                                       api_version)
    facts["binary"] = binary
    found += version_findings

    log, cls, belongs = _server_log(ctx, seen.log or _read_log(ctx, runner, stdin), main,
                                    api_version, facts, notes)

    env_facts, env_findings = _environment(ctx, main, launchers[main.pid], cls, belongs,
                                           log.source if log else None)
    facts["environment"] = env_facts
    if env_facts.get("error") and env_facts.get("source") is None:
        notes.append(f"the server's environment is unknown: {env_facts['error']}")
    found += env_findings

    if log is not None and cls is not None:
        from ollama_doctor import logs

        from_log = logs.findings(cls, log.source)
        if not belongs and not ctx.options.log_file:
            for finding in from_log:
                finding.severity = _lower(finding.severity)
                finding.message += (" (this log may belong to another server: "
                                    f"{facts['log']['mismatch']})")
        found += from_log
    summary = _describe(servers, main)
    return _finish(summary, facts, found, notes)


def _no_server_reason(ctx: Context, error: str | None, elsewhere: list[ServerProcess]) -> str:
    wanted = ", ".join(str(p) for p in ctx.options.server_pids)
    if error:
        return f"cannot list processes ({error})"
    if wanted:
        return f"no process with pid {wanted} (--server-pid) runs"
    if elsewhere:
        return ("no Ollama server process runs in this network namespace ("
                + ", ".join(f"pid {s.pid}" for s in elsewhere)
                + " in another: another container's server)")
    return "no Ollama server process runs on this machine"


def _server_log(ctx: Context,
                read: tuple[logread.LogText | None, logs.Classification | None],
                main: ServerProcess, api_version: str | None, facts: dict[str, Any],
                notes: list[str]
                ) -> tuple[logread.LogText | None, logs.Classification | None, bool]:
    """The server's log and its classification, and whether it belongs to ``main``."""
    log, cls = read
    belongs = True
    if log is not None:
        facts["log"] = log.to_dict()
        if cls is not None:
            facts["log"].update(cls.facts())
            belongs, why = _log_belongs(cls, main, api_version)
            facts["log"]["matches_server"] = belongs
            if why:
                facts["log"]["mismatch"] = why
        elif ctx.options.log_file:
            notes.append(f"cannot read the log {log.source}: {log.error}")
    return log, cls, belongs


# ---------------------------------------------------------------------------------------------
# processes, target, listeners


def _find(ctx: Context) -> tuple[list[ServerProcess], list[ServerProcess], str | None]:
    """This machine's servers, those of other network namespaces, and any error."""
    try:
        return find_servers(ctx), servers_elsewhere(ctx), None
    except Exception as exc:  # psutil trouble (AccessDenied, a vanished /proc) is a note
        return [], [], f"{type(exc).__name__}: {exc}".rstrip(": ")


@dataclass
class TargetView:
    """The target as this machine sees it."""

    port: int
    addresses: list[str]  # the target's addresses (resolved, normalised)
    local: list[str]  # those that belong to this machine (loopback included)
    this_machine: bool
    refused: dict[str, bool] = field(default_factory=dict)  # address → refused?
    interfaces_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"addresses": self.addresses, "this_machine": self.this_machine,
                               "local_addresses": self.local,
                               "refused": [a for a, r in self.refused.items() if r]}
        if self.interfaces_error:
            out["interfaces_error"] = self.interfaces_error
        return out


def _target_view(ctx: Context, reach: ReachabilityFacts | None) -> TargetView:
    target = ctx.target
    raw: list[str] = []
    if reach is not None and reach.addresses is not None:
        raw = list(reach.addresses)
    elif normalise_ip(target.dial_host):
        raw = [target.dial_host]
    else:
        res = ctx.resolve(target.dial_host, target.port)
        raw = res.addresses
    addresses = [a for a in (normalise_ip(x) for x in raw) if a]
    ifaces, error = local_addresses()
    local = [a for a in addresses if a in ifaces or is_loopback_ip(a)]
    this_machine = bool(local) or target.is_loopback or target.is_unspecified
    view = TargetView(target.port, addresses, local, this_machine, interfaces_error=error)
    connects = reach.connects if reach is not None else None
    if connects is not None:
        for item in connects:
            address = normalise_ip(item.address)
            if address:
                view.refused[address] = item.error == "refused"
    else:
        for address in local:
            result = net.tcp_connect(address, target.port, ctx.op_timeout())
            view.refused[address] = result.error is not None and result.error.kind == "refused"
    return view


def _serving(servers: list[ServerProcess], view: TargetView) -> ServerProcess | None:
    """The server whose listener accepts the target's address and port."""
    for server in servers:
        if any(p == view.port and any(covers(a, t) for t in view.local)
               for a, p in server.listeners):
            return server
    return None


def _fmt(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _listens(server: ServerProcess) -> str:
    if not server.listeners:
        return "no visible socket" if server.access_error else "no TCP port"
    return ", ".join(_fmt(a, p) for a, p in server.listeners)


def _count(servers: list[ServerProcess]) -> str:
    return "1 Ollama server runs" if len(servers) == 1 else f"{len(servers)} Ollama servers run"


def _describe(servers: list[ServerProcess], main: ServerProcess) -> str:
    user = f", user {main.user}" if main.user else ""
    text = f"Ollama server pid {main.pid}{user} listens on {_listens(main)}"
    if len(servers) > 1:
        text += f" ({len(servers) - 1} more server{'s' if len(servers) > 2 else ''} run)"
    return text


def _listener_findings(ctx: Context, servers: list[ServerProcess], view: TargetView,
                       port_listeners: list[Listener],
                       launchers: dict[int, Launcher]) -> list[Finding]:
    port = ctx.target.port
    out: list[Finding] = []
    pids = {s.pid for s in servers}
    evidence_servers = [{"pid": s.pid, "user": s.user, "listens": _listens(s)} for s in servers]

    if len(servers) > 1:
        out.append(Finding(
            "wrong-instance", Severity.WARNING,
            f"{len(servers)} Ollama servers run on this machine ("
            + "; ".join(f"pid {s.pid} on {_listens(s)}" for s in servers)
            + "): each has its own models and settings, so a call may reach the other one.",
            {"servers": evidence_servers},
            [FixStep("Keep one server: quit the desktop app before running `ollama serve`, or "
                     "stop the service, then check which one answers.",
                     (R.sh("ps aux | grep '[o]llama serve'"), R.sh("sudo systemctl stop ollama"),
                      R.curl(f"{ctx.target.root_url}/api/version")))]))

    serving = _serving(servers, view)
    others = [lst for lst in port_listeners
              if lst.pid is not None and lst.pid not in pids
              and any(covers(lst.address, t) for t in view.local)]
    if others:
        holder = others[0]
        who = f"{holder.name or 'a process'} (pid {holder.pid})"
        if serving is None:
            message = (f"Port {port} at {ctx.target.dial_host} is held by {who}, not by the "
                       f"Ollama server found (pid {servers[0].pid}, on {_listens(servers[0])}): "
                       "calls reach another program or another Ollama.")
        else:
            message = (f"Besides the Ollama server (pid {serving.pid}), {who} listens on port "
                       f"{port} at {_fmt(holder.address, port)}: which one a call reaches "
                       "depends on the address it dials.")
        out.append(Finding(
            "wrong-instance", Severity.WARNING, message,
            {"listeners": [lst.to_dict() for lst in port_listeners],
             "servers": evidence_servers},
            [FixStep("Stop the other program, or move one of them to another port.",
                     (R.listening_on(port),))]))
    if serving is not None or others:
        return out

    refused = [a for a in view.local if view.refused.get(a)]
    on_port = [(s, a) for s in servers for a, p in s.listeners if p == port]
    remote_local = [a for a in view.local if not is_loopback_ip(a)]
    bound = _loopback_bound(servers, port_listeners, port)
    if bound is not None and remote_local:
        addresses, holder_of_port = bound
        refused_here = [a for a in remote_local if view.refused.get(a)]
        if refused_here:
            launcher = (launchers[holder_of_port.pid] if holder_of_port.pid in launchers
                        else launcher_of_pid(ctx, holder_of_port.pid, holder_of_port.name))
            out.append(_bound_to_loopback(ctx, holder_of_port, addresses, refused_here,
                                          launcher))
        return out
    listening_ports = sorted({p for s in servers for _, p in s.listeners})
    if not on_port and listening_ports:
        server = next(s for s in servers if s.listeners)
        alt = next((p for a, p in server.listeners if covers(a, view.local[0])), None) \
            if view.local else None
        alt = alt or listening_ports[0]
        # a note beside reachability's server-not-running, which stays the cause: it says where
        # the server is instead
        severity = Severity.WARNING if refused else Severity.INFO
        confidence = Confidence.HIGH if refused else Confidence.MEDIUM
        host = ctx.target.bracketed_host if not ctx.target.is_unspecified else "127.0.0.1"
        out.append(Finding(
            "wrong-port-scheme", severity,
            f"The Ollama server (pid {server.pid}) listens on {_listens(server)}, not on port "
            f"{port} that the client dials"
            + (": connections there are refused." if refused else "."),
            {"target": ctx.target.base_url, "servers": evidence_servers,
             "refused": refused},
            [FixStep(f"Point the client at port {alt}, or restart the server on port {port}.",
                     (R.export_host(f"http://{host}:{alt}"),
                      R.curl(f"http://{host}:{alt}/")))],
            confidence))
    return out


@dataclass(frozen=True)
class Holder:
    """Who holds the target's port: an Ollama server found (by name or ``--server-pid``), or
    whatever process psutil names, or one it cannot see (another user's, without root)."""

    pid: int | None
    name: str | None
    server: bool

    def describe(self) -> str:
        if self.server:
            return f"The Ollama server (pid {self.pid})"
        if self.pid is None:
            return "A process we cannot inspect"
        return f"The process {self.name} (pid {self.pid})" if self.name else \
            f"The process with pid {self.pid}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "ollama_server": self.server}


def _loopback_bound(servers: list[ServerProcess], port_listeners: list[Listener],
                    port: int) -> tuple[list[str], Holder] | None:
    """The addresses the target's port is bound to and who holds it, when every socket on that
    port (a server's or any process's) is on loopback; else None. The socket decides, not the
    process's name: a renamed binary, a wrapper or a Python or Docker proxy on 127.0.0.1 refuses
    the machine's other addresses just the same."""
    pids = {s.pid for s in servers}
    entries = [(a, Holder(s.pid, s.name, True)) for s in servers for a, p in s.listeners
               if p == port]
    entries += [(lst.address, Holder(lst.pid, lst.name, lst.pid in pids))
                for lst in port_listeners if lst.port == port]
    if not entries or not all(is_loopback_ip(a) for a, _ in entries):
        return None
    holder = (next((h for _, h in entries if h.server), None)
              or next((h for _, h in entries if h.pid is not None), None) or entries[0][1])
    return sorted({a for a, _ in entries}), holder


def _listeners_alone(ctx: Context, facts: dict[str, Any],
                     notes: list[str]) -> tuple[list[Finding], str | None]:
    """With no server process found, the target's sockets can still prove
    ``bound-to-loopback``: another address of this machine is refused while the port is held
    on loopback only. Looks only when reachability's connects saw a refusal (never resolves or
    connects again), and at sockets only when a refused address is this machine's."""
    reach = ctx.facts(ReachabilityFacts)
    if reach is None or not reach.any_refused:
        return [], None
    view = _target_view(ctx, reach)
    refused = [a for a in view.local if not is_loopback_ip(a) and view.refused.get(a)]
    if not view.this_machine or not refused:
        return [], None
    facts["target"] = view.to_dict()
    port = ctx.target.port
    port_listeners, listen_error = listeners_on(port)
    facts["listeners"] = [lst.to_dict() for lst in port_listeners]
    if listen_error:
        facts["listeners_error"] = listen_error
        notes.append(listen_error)
    bound = _loopback_bound([], port_listeners, port)
    if bound is None:
        return [], None
    addresses, holder = bound
    launcher = launcher_of_pid(ctx, holder.pid, holder.name)
    where = ", ".join(_fmt(a, port) for a in addresses)
    who = holder.describe()
    return ([_bound_to_loopback(ctx, holder, addresses, refused, launcher)],
            f"{who[0].lower()}{who[1:]} listens on {where} only")


def _bound_to_loopback(ctx: Context, holder: Holder, bound: list[str],
                       refused: list[str], launcher: Launcher) -> Finding:
    port = ctx.target.port
    where = ", ".join(_fmt(a, port) for a in sorted(set(bound)))
    address = refused[0]
    head = (f"{holder.describe()} listens on {where} only, so {_fmt(address, port)}, an "
            "address of this machine, refuses connections: ")
    if holder.server:
        action = f"set OLLAMA_HOST=0.0.0.0:{port} {_where_phrase(launcher)}."
    elif launcher.kind == "docker":
        action = ("the container's port is published on loopback only; publish it on every "
                  f"interface (-p {port}:11434, not -p 127.0.0.1:{port}:11434).")
    else:
        action = (f"if it is Ollama, set OLLAMA_HOST=0.0.0.0:{port} {_where_phrase(launcher)}; "
                  "if it is a proxy or wrapper in front of Ollama, make it listen on "
                  f"0.0.0.0:{port}.")
    fix = launcher_fix(launcher, "OLLAMA_HOST", f"0.0.0.0:{port}", port)
    fix.append(FixStep("Then check from the address the client uses. 0.0.0.0 opens the server "
                       "to your network: allow the port in the firewall only for trusted hosts.",
                       (R.curl(f"http://{_fmt(address, port)}/"),)))
    evidence: dict[str, Any] = {
        "server_pid": holder.pid if holder.server else None, "holder": holder.to_dict(),
        "listens": [_fmt(a, port) for a in sorted(set(bound))],
        "refused": [_fmt(a, port) for a in refused], "launcher": launcher.to_dict()}
    return Finding("bound-to-loopback", Severity.CRITICAL, head + action, evidence, fix,
                   Confidence.HIGH)


def _where_phrase(launcher: Launcher) -> str:
    return {
        "systemd": f"in the {launcher.unit or 'ollama.service'} unit (systemctl edit ollama), "
                   "not in a shell",
        "launchd": "with launchctl setenv, then restart the Ollama app",
        "windows": "as a Windows user variable, then quit and restart Ollama from the tray",
        "docker": "by publishing the port with -p 11434:11434 (the image already listens on "
                  "0.0.0.0)",
        "shell": "in the command that starts the server, then restart it",
    }.get(launcher.kind, "where the server starts (its service, app or command), then restart "
                         "it")


def launcher_fix(launcher: Launcher, name: str, value: str, port: int) -> list[FixStep]:
    """Where to set ``name=value`` so the server sees it, for the way it was started. Pure."""
    secret = is_secret_name(name) and "PROXY" not in name.upper()
    return R.server_env(launcher, name, value, port, secret=secret)


# ---------------------------------------------------------------------------------------------
# the binary on PATH


_CLIENT_VERSION = re.compile(r"client version is (\S+)")
_SERVER_VERSION = re.compile(r"ollama version is (\S+)")


def parse_version_output(text: str) -> tuple[str | None, str | None]:
    """``ollama -v`` → (the binary's own version, the version of the server it reached)."""
    client = _CLIENT_VERSION.search(text)
    server = _SERVER_VERSION.search(text)
    server_version = server.group(1) if server else None
    return (client.group(1) if client else server_version), server_version


def _version_run(ctx: Context, runner: logread.Runner | None
                 ) -> tuple[str | None, logread.CommandResult | None]:
    """``ollama -v`` when the binary is on ``PATH``: its path and what it said."""
    exe = logread.which("ollama", ctx.env)
    if exe is None:
        return None, None
    return exe, (runner or logread.run_command)([exe, "-v"], ctx.op_timeout(VERSION_TIMEOUT),
                                             ctx.env)


def _binary(ctx: Context, ran: tuple[str | None, logread.CommandResult | None],
            api_version: str | None) -> tuple[dict[str, Any], list[Finding]]:
    exe, result = ran
    if exe is None or result is None:
        return {"path": None, "note": "no ollama binary on PATH"}, []
    text = (result.stdout + b"\n" + result.stderr).decode("utf-8", "replace")[:2000]
    client, via_cli = parse_version_output(text)
    facts: dict[str, Any] = {"path": exe, "version": client, "server_version_seen": via_cli,
                             "output": redact_text(" ".join(text.split()))[:300]}
    if result.error:
        facts["error"] = result.error
    if client and api_version and client != api_version:
        return facts, [Finding(
            "wrong-instance", Severity.INFO,
            f"The ollama binary on PATH ({exe}) is version {client}, but the server at the "
            f"target reports {api_version}: two installations, or a server not restarted after "
            "an upgrade.",
            {"binary": exe, "binary_version": client, "api_version": api_version},
            confidence=Confidence.MEDIUM)]
    return facts, []


# ---------------------------------------------------------------------------------------------
# the log


def _read_log(ctx: Context, runner: logread.Runner | None,
              stdin: TextIO | None) -> tuple[logread.LogText | None, logs.Classification | None]:
    from pathlib import Path

    log = logread.read_log(ctx.options.log_file, ctx.options.log_lines, ctx.env, ctx.fs_root,
                           stdin=stdin, timeout=ctx.op_timeout(), runner=runner,
                           journal=ctx.fs_root == Path("/"))
    if log is None or not log.ok:
        return log, None
    from ollama_doctor import logs

    return log, logs.classify(log.lines, ctx.secrets(), log.numbers)


def _log_belongs(cls: logs.Classification, server: ServerProcess,
                 api_version: str | None) -> tuple[bool, str | None]:
    """Whether the log's last start line fits the server: its port and version."""
    if not cls.listening:
        return True, None
    last = cls.listening[-1]
    address = str(last.get("address") or "")
    port_text = address.rsplit(":", 1)[-1]
    ports = {p for _, p in server.listeners}
    if port_text.isdigit() and ports and int(port_text) not in ports:
        return False, (f"it last started listening on {address}, the server listens on "
                       f"{_listens(server)}")
    version = last.get("version")
    if api_version and version and version != api_version:
        return False, f"it last started version {version}, the target reports {api_version}"
    return True, None


def _log_only(ctx: Context, facts: dict[str, Any], runner: logread.Runner | None,
              stdin: TextIO | None, notes: list[str], seen: Gathered) -> list[Finding]:
    log, cls = seen.log or _read_log(ctx, runner, stdin)
    if log is None:
        return []
    facts["log"] = log.to_dict()
    if cls is None:
        notes.append(f"cannot read the log {log.source}: {log.error}")
        return []
    facts["log"].update(cls.facts())
    from ollama_doctor import logs

    if cls.server_env is not None:
        facts["log"]["server_env"] = logs.redact_env_map(_relevant_map(cls.server_env))
    return logs.findings(cls, log.source)


def _without_server(ctx: Context, reason: str, facts: dict[str, Any], notes: list[str],
                    runner: logread.Runner | None, stdin: TextIO | None,
                    found: list[Finding], holder: str | None, seen: Gathered) -> Outcome:
    """No server process: the findings the sockets alone gave (``holder`` says who holds the
    port), and the log when ``--log-file`` names one."""
    if holder:
        reason = f"{reason}, but {holder}"
    if not ctx.options.log_file:
        if found:
            return _finish(reason, facts, found, notes)
        status = Status.WARN if notes else Status.SKIP
        return Outcome(status, ("" if notes else "skipped: ") + reason, facts)
    found = found + _log_only(ctx, facts, runner, stdin, notes, seen)
    log = facts.get("log", {})
    summary = f"{reason}; the log {log.get('source', ctx.options.log_file)}"
    summary += (f" ({log.get('lines_read', 0)} lines) was classified" if "error" not in log
                else f" cannot be read: {log['error']}")
    return _finish(summary, facts, found, notes)


# ---------------------------------------------------------------------------------------------
# the environment


def _relevant(name: str) -> bool:
    upper = name.upper()
    if upper in PROXY_NAMES:
        return True
    return name.startswith("OLLAMA_") and name not in CLIENT_ONLY


def _relevant_map(env: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if _relevant(k)}


def _redact(name: str, value: str | list[str] | None) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [redact_url(redact_text(v)) for v in value]
    if is_secret_name(name) and "PROXY" not in name.upper():
        return MASK if value else ""
    return redact_url(redact_text(value))


@dataclass(frozen=True)
class EnvDifference:
    name: str
    shell: str
    server: str | list[str] | None  # None: not set in the server's environment

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shell": _redact(self.name, self.shell),
                "server": _redact(self.name, self.server)}


def env_differences(shell: Mapping[str, str], server: Mapping[str, str | list[str]],
                    *, complete: bool) -> list[EnvDifference]:
    """``OLLAMA_*`` and proxy variables set (non-empty) in ``shell`` that the server does not
    have with an equivalent value. ``complete``: ``server`` is a whole environment (a missing
    name is unset); otherwise (the log's map) only the names it prints are known. Pure."""
    out: list[EnvDifference] = []
    for name in sorted(shell):
        value = shell[name]
        if not _relevant(name) or not _trim(value):
            continue
        if name not in server and not complete:
            continue
        theirs = server.get(name)
        if not same_setting(name, value, theirs):
            out.append(EnvDifference(name, value, theirs))
    return out


def _trim(value: str) -> str:
    """As Ollama's ``envconfig.Var``: surrounding spaces and quotes removed."""
    return value.strip().strip("\"'").strip()


def same_setting(name: str, shell: str, server: str | list[str] | None) -> bool:
    """Whether the server's value (``None``: unset, so the default) means what the shell's
    does, by the variable's type: address, origin list, duration, boolean, level. Pure."""
    mine = _trim(shell)
    if isinstance(server, list):
        theirs_list = [x.strip() for x in server if x.strip()]
        if name == "OLLAMA_ORIGINS":
            return {x.strip() for x in mine.split(",") if x.strip()} <= set(theirs_list)
        return mine == " ".join(theirs_list)
    theirs = _trim(server) if server is not None else DEFAULTS.get(name, "")
    upper = name.upper()
    if upper in PROXY_NAMES:
        return mine == theirs
    if name == "OLLAMA_HOST":
        return _same_host(mine, theirs)
    if name == "OLLAMA_ORIGINS":
        return ({x.strip() for x in mine.split(",") if x.strip()}
                <= {x.strip() for x in theirs.split(",") if x.strip()})
    if name in DURATIONS:
        a, b = go_duration_seconds(mine), go_duration_seconds(theirs)
        return a is not None and a == b
    if name in BOOLEANS:
        return _truthy(mine) == _truthy(theirs)
    if name == "OLLAMA_DEBUG":
        return _level(mine) == _level(theirs)
    return mine == theirs


def _truthy(value: str) -> bool:
    """Go's ``strconv.ParseBool``, with Ollama's rule that anything else non-empty is true."""
    return value.strip().lower() not in ("", "0", "f", "false")


def _level(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in ("debug", "trace", "info", "warn", "error"):
        return lowered
    if lowered == "2":
        return "trace"
    return "debug" if _truthy(lowered) and lowered not in ("0",) else "info"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(value: str) -> float | None:
    """A Go duration (``5m0s``, ``1h30m``, ``-1``) or bare integer seconds → seconds."""
    text = value.strip()
    if not text:
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text.isdigit():
        return sign * float(text)
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return sign * total if pos == len(text) and pos else None


def split_ollama_host(value: str) -> tuple[str, int]:
    """``OLLAMA_HOST`` as the server reads it → (host, port); "" host = every interface.

    No scheme: port 11434; ``http://`` without a port: 80; ``https://``: 443 (config.go)."""
    text = _trim(value) or "127.0.0.1:11434"
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    default = 11434 if not sep else (443 if scheme.lower() == "https" else 80)
    hostport = rest.split("/", 1)[0]
    host, port_text = hostport, ""
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    port = int(port_text) if port_text.isdigit() and int(port_text) < 65536 else default
    return host.lower(), port


def _same_host(mine: str, theirs: str) -> bool:
    (h1, p1), (h2, p2) = split_ollama_host(mine), split_ollama_host(theirs)
    if p1 != p2:
        return False
    if h1 == h2:
        return True
    def kind(host: str) -> str:
        if host in ("", "0.0.0.0", "::"):
            return "any"
        if host == "localhost" or is_loopback_ip(host):
            return "loopback"
        return normalise_ip(host) or host
    k1, k2 = kind(h1), kind(h2)
    # the server's bind on every interface covers whatever address the client dials
    return k1 == k2 or k2 == "any"


def _environment(ctx: Context, server: ServerProcess, launcher: Launcher,
                 cls: logs.Classification | None, belongs: bool,
                 log_source: str | None) -> tuple[dict[str, Any], list[Finding]]:
    facts: dict[str, Any] = {"pid": server.pid}
    data, error = read_proc(ctx, server.pid, "environ")
    server_env: Mapping[str, str | list[str]] | None = None
    complete = False
    if data is not None:
        server_env, complete = parse_environ(data), True
        facts["source"] = f"/proc/{server.pid}/environ"
    elif cls is not None and cls.server_env is not None and belongs:
        server_env = cls.server_env
        facts["source"] = f"server config line {cls.server_env_line} of {log_source}"
    else:
        facts["source"] = None
    if error:
        facts["error"] = error
    if server_env is None:
        return facts, []
    facts["server"] = {k: _redact(k, v) for k, v in sorted(_relevant_map(server_env).items())}
    diffs = env_differences(ctx.env, server_env, complete=complete)
    facts["differences"] = [d.to_dict() for d in diffs]
    return facts, [_setting_finding(ctx, d, server, launcher, cls, facts["source"])
                   for d in diffs]


def _setting_finding(ctx: Context, diff: EnvDifference, server: ServerProcess,
                     launcher: Launcher, cls: logs.Classification | None,
                     source: str) -> Finding:
    shell = _redact(diff.name, diff.shell)
    theirs = _redact(diff.name, diff.server)
    if theirs is None:
        there = f"the server (pid {server.pid}) does not have it ({source})"
        if DEFAULTS.get(diff.name):
            there += f", so it uses the default {DEFAULTS[diff.name]}"
    elif isinstance(theirs, list):
        there = f"[{' '.join(theirs)}] for the server (pid {server.pid}, {source})"
    else:
        there = f"{theirs!r} for the server (pid {server.pid}, {source})"
    severity, why = Severity.WARNING, ""
    if diff.name == "OLLAMA_HOST":
        host, _ = split_ollama_host(diff.shell)
        wants_network = host in ("", "0.0.0.0", "::") or not (
            host == "localhost" or is_loopback_ip(host))
        loopback_only = bool(server.listeners) and all(
            is_loopback_ip(a) for a, _ in server.listeners)
        if wants_network and loopback_only:
            severity = Severity.ERROR
            why = f"; the server listens on {_listens(server)} only"
    elif diff.name == "OLLAMA_ORIGINS":
        auth = ctx.facts(AuthFacts)
        if auth is not None and auth.origin_refused:
            severity = Severity.ERROR
            why = "; the auth probe saw the server refuse the Origin (403)"
    elif diff.name == "OLLAMA_LOAD_TIMEOUT" and cls is not None and "load-timeout" in cls.hits:
        severity = Severity.ERROR
        why = "; the log shows the server's own load timeout firing"
    message = (f"{diff.name} is {shell!r} in this shell, but {there}: a shell's setting never "
               f"reaches a server started elsewhere{why}.")
    value = diff.shell if not is_secret_name(diff.name) else MASK
    return Finding(
        "setting-not-applied", severity, message,
        {"variable": diff.name, "shell": shell, "server": theirs, "source": source,
         "pid": server.pid, "launcher": launcher.to_dict()},
        launcher_fix(launcher, diff.name, _trim(value), ctx.target.port),
        Confidence.HIGH if source.startswith("/proc/") else Confidence.MEDIUM)


# ---------------------------------------------------------------------------------------------


_LOWER = {Severity.CRITICAL: Severity.ERROR, Severity.ERROR: Severity.WARNING,
          Severity.WARNING: Severity.INFO, Severity.INFO: Severity.INFO}


def _lower(severity: Severity) -> Severity:
    return _LOWER[severity]


def _finish(summary: str, facts: dict[str, Any], found: list[Finding],
            notes: list[str]) -> Outcome:
    worst = max((f.severity.rank for f in found), default=-1)
    if found and worst >= Severity.WARNING.rank:
        causes = []
        for f in sorted(found, key=lambda f: -f.severity.rank):
            if f.severity.rank >= Severity.WARNING.rank and f.cause not in causes:
                causes.append(f.cause)
        summary += "; found " + ", ".join(causes)
    if notes:
        facts["notes"] = notes
        if worst < Severity.WARNING.rank:
            summary += f"; {notes[0]}"
    return Outcome.from_findings(summary, facts, found,
                                 floor=Status.WARN if notes else Status.PASS)
