"""The ordered list of probes: what each is called, what it needs, what it can find.

One tuple literal, not discovery by reflection: the order here is the order of ``checks[]`` in
every report and of ``ollama-doctor probes``. A new probe is one module under ``probes/`` with a
``run(ctx) -> Outcome`` function, plus one line here.

- ``needs``: probes that must pass (or warn) first; when one fails, this probe is skipped with
  ``blocked_by`` naming it, so one root cause does not show up as five failures.
- ``after``: probes whose facts this one reads when they ran; it waits for them but is not
  skipped when they fail.
- ``opt_in``: runs only when asked (``probe NAME`` or its ``check`` flag).
- ``local``: looks at this machine only (processes, files, limits): it runs beside the network
  probes, never in one of their worker slots (``runner.py``), so it cannot delay them.
- ``prepare``: the probe's module has a ``prepare(ctx)`` function doing its expensive local work
  (a process scan, cgroup files, GPU tools, the server's log), which depends on no other probe.
  The runner starts it in a thread of its own as soon as local work may start (once
  reachability is done, see ``runner.py``), beside the network probes; ``run`` takes its result
  (``Context.once``), so only the cheap judgement that reads other probes' facts waits for them.

The critical path of a default ``check`` is reachability → models/auth → warmup: the local
probes wait for network facts only to judge (the model's size, refused connects, a 403 on the
Origin), never to do their own work, and ulimit, which reads no other probe, waits for none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ollama_doctor.context import Context
    from ollama_doctor.result import Outcome


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    title: str
    description: str
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    opt_in: bool = False
    local: bool = False
    prepare: bool = False

    def load(self) -> Callable[[Context], Outcome]:
        module = importlib.import_module(f"ollama_doctor.probes.{self.id}")
        run: Callable[[Context], Outcome] = module.run
        return run

    def load_prepare(self) -> Callable[[Context], object]:
        """The module's ``prepare(ctx)`` (only for a spec with ``prepare=True``)."""
        module = importlib.import_module(f"ollama_doctor.probes.{self.id}")
        prepare: Callable[[Context], object] = module.prepare
        return prepare


REGISTRY: tuple[ProbeSpec, ...] = (
    ProbeSpec(  # proxy
        "proxy", "Proxy settings",
        "Which proxy each client family uses for the target; direct vs proxied GET /.",
        causes=("proxy-captures-local", "proxy-blocks", "proxy-unreachable",
                "proxy-unsupported"),
    ),
    ProbeSpec(
        "reachability", "Server reachable",
        "Resolve the target, TCP-connect to every address, GET / and /api/version.",
        causes=("server-not-running", "connect-timeout", "server-unresponsive", "not-ollama",
                "unspecified-address", "wrong-port-scheme", "client-parsing-differs",
                "wrong-base-path", "dns-failure", "tls-error", "bad-gateway",
                "gateway-timeout", "proxy-unreachable", "proxy-unsupported", "proxy-blocks"),
    ),
    ProbeSpec(  # dns
        "dns", "Name resolution",
        "System resolver vs DNS servers, /etc/hosts, address order; IPv4 vs IPv6 localhost.",
        after=("proxy", "reachability"),
        causes=("dns-failure", "ipv6-localhost", "high-latency"),
    ),
    ProbeSpec(  # latency
        "latency", "Latency",
        "Connect, TLS, time to first byte and transfer, sampled; jitter and failures.",
        # after, not needs: when reachability fails on TLS (or on a TLS port spoken to in
        # plain HTTP) this probe still runs its TLS checks; otherwise it skips itself.
        after=("reachability",),
        causes=("high-latency", "tls-error", "wrong-port-scheme"),
    ),
    ProbeSpec(  # container
        "container", "Container and limits",
        "Container or WSL detection, cgroup v1/v2 limits, localhost inside a container.",
        # judged with the model's size (models) and refused connects (reachability); the
        # detection and the cgroup reads are its prepare step
        after=("reachability", "models"), local=True, prepare=True,
        causes=("container-localhost", "memory-limit"),
    ),
    ProbeSpec(
        "server", "Local server",
        "Ollama processes, listeners, effective environment and server log on this machine.",
        # judged with reachability's addresses, connects and version and auth's 403 on the
        # Origin; the process scan, sockets, `ollama -v` and the log are its prepare step
        after=("reachability", "auth"), local=True, prepare=True,
        causes=("bound-to-loopback", "wrong-instance", "wrong-port-scheme",
                "setting-not-applied", "out-of-memory", "runner-crashed", "slow-model-load",
                "gpu-offload", "prompt-truncated", "fd-limit-low", "ollama-outdated",
                "server-error", "rate-limited"),
    ),
    ProbeSpec(  # ulimit
        "ulimit", "Open-file limits",
        "RLIMIT_NOFILE of this process and of the server, against the expected concurrency.",
        # reads no other probe: the process scan it shares with server is kept in ctx.memo
        local=True,
        causes=("fd-limit-low",),
    ),
    ProbeSpec(  # resources
        "resources", "Memory, disk and GPU",
        "Free memory, disk where models live, swap, GPUs and VRAM against the model's size.",
        # judged with the model's size; memory, disk, GPU tools and the scan are prepared
        after=("reachability", "models"), local=True, prepare=True,
        causes=("disk-space-low", "memory-limit", "gpu-offload"),
    ),
    ProbeSpec(  # models
        "models", "Models",
        "The installed models; whether --model is one of them and can do what --needs asks.",
        needs=("reachability",),
        causes=("model-not-found", "model-capability", "wrong-instance",
                "cloud-signin-required", "rate-limited", "server-error", "cloud-disabled",
                "bad-gateway"),
    ),
    ProbeSpec(  # auth
        "auth", "Auth and access",
        "Credentials and Origin the client sends; 401 and 403 told apart by re-probing.",
        needs=("reachability",),
        causes=("auth-required", "cloud-signin-required", "cloud-disabled", "origin-forbidden",
                "host-forbidden", "forbidden", "proxy-blocks"),
    ),
    ProbeSpec(  # warmup
        "warmup", "Model warm-up",
        "Loads --model (never pulls): cold-load time vs client timeout, first token, offload.",
        needs=("models",),
        causes=("slow-model-load", "reload-churn", "prompt-truncated", "gpu-offload",
                "runner-crashed", "out-of-memory", "server-busy", "server-error",
                "model-capability", "ollama-outdated", "cloud-signin-required",
                "cloud-disabled", "rate-limited", "bad-gateway", "thinking-budget"),
    ),
    ProbeSpec(  # v1
        "v1", "OpenAI-compatible API",
        "GET /v1/models and one-token /v1/chat/completions (plain, streamed, tools) as an "
        "OpenAI client; a reasoning model that runs out of tokens.",
        # after warmup: the model is loaded by then, so a completion here times the API
        needs=("reachability",), after=("models", "auth", "warmup"), opt_in=True,
        causes=("wrong-base-path", "model-not-found", "model-capability", "server-error",
                "bad-request", "runner-crashed", "out-of-memory", "bad-gateway",
                "gateway-timeout", "thinking-budget"),
    ),
    ProbeSpec(  # load
        "load", "Load",
        "Ramps request rate to the first 429/503 or latency knee, within hard bounds.",
        needs=("reachability",), opt_in=True,
        causes=("rate-limited", "server-busy", "high-latency", "server-error"),
    ),
)

BY_ID: dict[str, ProbeSpec] = {spec.id: spec for spec in REGISTRY}


def get(probe_id: str) -> ProbeSpec:
    return BY_ID[probe_id]


def closure(probe_id: str) -> list[str]:
    """The probe and every probe it needs or reads, in registry order."""
    wanted: set[str] = set()
    stack = [probe_id]
    while stack:
        current = stack.pop()
        if current in wanted:
            continue
        wanted.add(current)
        spec = BY_ID[current]
        stack.extend(spec.needs)
        stack.extend(spec.after)
    return [spec.id for spec in REGISTRY if spec.id in wanted]
