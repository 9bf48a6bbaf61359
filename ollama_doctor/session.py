"""One check as a function call: the entry point ``watch``, ``exporter`` and fleets build on.

``run_check`` builds the same ``Context`` the command line builds, runs the same pipeline
(``runner.run_probes`` → ``diagnosis.rank`` → ``diagnosis.summary`` → ``report.build``) and
returns the report document (the schema of ``ollama-doctor schema``). It never prints and never
raises for network trouble; a target no client could use raises ``target.TargetError`` and an
unknown probe name raises ``ValueError``, both with a one-line message.

The **fleet probe set** (``FLEET_PROBES``) is what a remote check needs and nothing that loads
models or reads this machine's processes: proxy, reachability, dns, latency, models, auth.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ollama_doctor.context import Context

if TYPE_CHECKING:
    from ollama_doctor.context import Options
    from ollama_doctor.target import Target

SHARED_MEMO = ("servers", "servers.elsewhere")  # local.find_servers' per-run cache
FLEET_PROBES: tuple[str, ...] = ("proxy", "reachability", "dns", "latency", "models", "auth")
# Latency samples per phase for fleet checks and scrapes: three give a median and a jitter at
# 60 % of the cost of the five a one-off check takes (the latency probe is most of a check).
FLEET_SAMPLES = 3


def probe_ids(names: Iterable[str]) -> list[str]:
    """Validate probe names (``a,b`` lists split already); registry order, no duplicates."""
    from ollama_doctor.registry import BY_ID, REGISTRY

    wanted = [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in BY_ID]
    if unknown:
        valid = ", ".join(s.id for s in REGISTRY)
        raise ValueError(f"unknown probe {unknown[0]!r}; valid probes: {valid}")
    if not wanted:
        raise ValueError("no probe named; valid probes: " + ", ".join(s.id for s in REGISTRY))
    return [s.id for s in REGISTRY if s.id in wanted]


def run_check(
    target: str | Target,
    *,
    model: str | None = None,
    probes: Iterable[str] = FLEET_PROBES,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
    options: Options | None = None,
    fs_root: str | Path = "/",
    command: str = "check",
    strict: bool = False,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``probes`` (plus, silently, what they need) against ``target``; the report document.

    ``options`` (when given) is used as is, except that ``model`` and ``timeout`` replace its
    values when they are passed explicitly with other values than the defaults. ``env`` is the
    environment the user's client would see (default: this process's). ``shared`` carries
    look-ups of this machine that the checks of one fleet run may reuse (the Ollama processes
    found when a loopback port refuses), so a thousand refusing loopback targets do not scan the
    process table a thousand times.
    """
    from ollama_doctor import diagnosis, registry, report
    from ollama_doctor.context import Options
    from ollama_doctor.runner import run_probes
    from ollama_doctor.target import Target, parse_target

    ids = probe_ids(probes)
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
    parsed = target if isinstance(target, Target) else parse_target(str(target), "option")
    if options is None:
        options = Options(timeout=timeout, model=model, load="load" in ids,
                          samples=FLEET_SAMPLES)
    else:
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if timeout != 5.0:
            changes["timeout"] = timeout
        if "load" in ids and not options.load:
            changes["load"] = True
        if changes:
            options = dataclasses.replace(options, **changes)
    prerequisites = sorted({p for i in ids for p in registry.closure(i)} - set(ids))
    ctx = Context(target=parsed, options=options,
                             env=dict(os.environ if env is None else env),
                             fs_root=Path(fs_root))
    ctx.deadline = ctx.clock() + 2 * options.timeout
    if shared is not None:
        ctx.memo.update({k: shared[k] for k in SHARED_MEMO if k in shared})
    results = run_probes(ctx, ids, prerequisites=prerequisites)
    if shared is not None:
        for key in SHARED_MEMO:
            if key in ctx.memo:
                shared.setdefault(key, ctx.memo[key])
    ranked = diagnosis.rank(results)
    summary = diagnosis.summary(ranked, results, strict=strict)
    return report.build(ctx, results, ranked, summary, command=command)


def problems(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The diagnosis entries worth telling an operator about (warning and worse)."""
    return [d for d in doc.get("diagnosis", []) if d.get("severity") != "info"]


