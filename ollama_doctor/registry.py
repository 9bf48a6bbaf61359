"""The ordered list of probes: what each is called, what it needs, what it can find.

One tuple literal, not discovery by reflection: the order here is the order of ``checks[]`` in
every report and of ``ollama-doctor probes``. A new probe is one module under ``probes/`` with a
``run(ctx) -> Outcome`` function, plus one line here.

- ``needs``: probes that must pass (or warn) first; when one fails, this probe is skipped with
  ``blocked_by`` naming it, so one root cause does not show up as five failures.
- ``after``: probes whose facts this one reads when they ran; it waits for them but is not
  skipped when they fail.
- ``opt_in``: runs only when asked (``probe NAME`` or its ``check`` flag).
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

    def load(self) -> Callable[[Context], Outcome]:
        module = importlib.import_module(f"ollama_doctor.probes.{self.id}")
        run: Callable[[Context], Outcome] = module.run
        return run


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
        after=("reachability", "models"),
        causes=("container-localhost", "memory-limit"),
    ),
    ProbeSpec(
        "server", "Local server",
        "Ollama processes, listeners, effective environment and server log on this machine.",
        after=("reachability", "auth"),
        causes=("bound-to-loopback", "wrong-instance", "wrong-port-scheme",
                "setting-not-applied", "out-of-memory", "runner-crashed", "slow-model-load",
                "gpu-offload", "prompt-truncated", "fd-limit-low", "ollama-outdated",
                "server-error", "rate-limited"),
    ),
    ProbeSpec(  # ulimit
        "ulimit", "Open-file limits",
        "RLIMIT_NOFILE of this process and of the server, against the expected concurrency.",
        after=("server",),
        causes=("fd-limit-low",),
    ),
    ProbeSpec(  # resources
        "resources", "Memory, disk and GPU",
        "Free memory, disk where models live, swap, GPUs and VRAM against the model's size.",
        after=("reachability", "models", "server"),
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
