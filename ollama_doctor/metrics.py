"""A report document → Prometheus metric families (``prometheus_client`` is imported lazily).

Names follow blackbox_exporter where one exists, under the ``ollama_doctor_`` prefix:

- ``ollama_doctor_check_success`` 1 when the check found no error-level cause, else 0;
- ``ollama_doctor_check_duration_seconds`` the whole check;
- ``ollama_doctor_probe_success{probe}`` 1 pass/warn, 0 fail/crash (skipped probes: absent);
- ``ollama_doctor_probe_duration_seconds{probe}``;
- ``ollama_doctor_http_duration_seconds{phase}`` medians of the latency probe's fresh
  connections: resolve, connect, tls, processing, transfer (the phases that apply);
- ``ollama_doctor_time_to_first_byte_seconds`` their median time to first byte;
- ``ollama_doctor_cause{cause,severity,code}`` 1 for each cause present (warning or worse);
- ``ollama_doctor_model_load_seconds{model}``, ``ollama_doctor_model_gpu_fraction{model}``
  when the warmup probe ran;
- ``ollama_doctor_server_info{version}`` 1, the version ``/api/version`` reported;
- ``ollama_doctor_rate_limit_per_second`` the rate the load probe found sustainable, when it ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
PREFIX = "ollama_doctor_"

Labelled = tuple[Mapping[str, str], Mapping[str, Any]]  # (extra labels, report document)


class _Family:
    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = PREFIX + name, doc, list(labels)
        self.samples: list[tuple[list[str], float]] = []


def families(items: Iterable[Labelled], extra_labels: Sequence[str] = ()) -> list[Any]:
    """Gauge families for every document, each sample labelled with ``extra_labels`` values."""
    from prometheus_client.core import GaugeMetricFamily

    fams: dict[str, _Family] = {}

    def put(name: str, doc: str, labels: dict[str, str], value: float | None,
            extra: Mapping[str, str]) -> None:
        if value is None:
            return
        fam = fams.get(name)
        if fam is None:
            fam = fams[name] = _Family(name, doc, [*extra_labels, *labels])
        fam.samples.append(([extra.get(k, "") for k in extra_labels] + list(labels.values()),
                            float(value)))

    for extra, doc in items:
        for name, help_text, labels, value in samples(doc):
            put(name, help_text, labels, value, extra)
    out = []
    for fam in fams.values():
        metric = GaugeMetricFamily(fam.name, fam.doc, labels=fam.labels)
        for values, value in fam.samples:
            metric.add_metric(values, round(value, 6))
        out.append(metric)
    return out


def samples(doc: Mapping[str, Any]) -> list[tuple[str, str, dict[str, str], float | None]]:
    """(name without prefix, help, labels, value) for one report document."""
    out: list[tuple[str, str, dict[str, str], float | None]] = []
    summary = doc.get("summary") or {}
    out.append(("check_success", "1 when the check found no error-level cause, else 0.", {},
                1.0 if summary.get("exit_code") == 0 else 0.0))
    elapsed = (doc.get("fleet") or {}).get("elapsed_s")
    if elapsed is not None:
        out.append(("check_duration_seconds", "How long the whole check took.", {}, elapsed))
    checks = {c["id"]: c for c in doc.get("checks", [])}
    for check in doc.get("checks", []):
        status = check.get("status")
        if status in ("pass", "warn", "fail", "error"):
            out.append(("probe_success", "1 when the probe passed (or warned), 0 when it "
                        "failed or crashed; skipped probes are absent.",
                        {"probe": check["id"]}, 1.0 if status in ("pass", "warn") else 0.0))
            out.append(("probe_duration_seconds", "How long each probe took.",
                        {"probe": check["id"]}, (check.get("duration_ms") or 0) / 1000))
    latency = (checks.get("latency") or {}).get("facts") or {}
    phases = ((latency.get("fresh") or {}).get("phases")) or {}
    for phase in PHASES:
        median = (phases.get(phase) or {}).get("median")
        if isinstance(median, (int, float)):
            out.append(("http_duration_seconds", "Median duration of each phase of a request "
                        "on a fresh connection (latency probe).", {"phase": phase},
                        median / 1000))
    ttfb = (phases.get("ttfb") or {}).get("median")
    if isinstance(ttfb, (int, float)):
        out.append(("time_to_first_byte_seconds", "Median time to first byte of GET "
                    "/api/version on a fresh connection (latency probe).", {}, ttfb / 1000))
    for diag in doc.get("diagnosis", []):
        if diag.get("severity") == "info":
            continue
        code = diag.get("code")
        out.append(("cause", "1 for each cause the check found (warning or worse).",
                    {"cause": str(diag.get("cause")), "severity": str(diag.get("severity")),
                     "code": "" if code is None else str(code)}, 1.0))
    warm = (checks.get("warmup") or {}).get("facts") or {}
    model = warm.get("model") or (doc.get("target") or {}).get("model") or ""
    if isinstance(warm.get("load_s"), (int, float)):
        out.append(("model_load_seconds", "How long the model took to load (warmup probe).",
                    {"model": str(model)}, warm["load_s"]))
    ps = warm.get("ps") or {}
    if isinstance(ps.get("size"), (int, float)) and ps["size"] > 0 \
            and isinstance(ps.get("size_vram"), (int, float)):
        out.append(("model_gpu_fraction", "Share of the loaded model in GPU memory "
                    "(/api/ps size_vram / size).", {"model": str(model)},
                    ps["size_vram"] / ps["size"]))
    version = ((checks.get("reachability") or {}).get("facts") or {}).get("version")
    if version:
        out.append(("server_info", "1, labelled with the version /api/version reported.",
                    {"version": str(version)}, 1.0))
    load = (checks.get("load") or {}).get("facts") or {}
    if isinstance(load.get("sustainable_rate"), (int, float)):
        out.append(("rate_limit_per_second", "Highest request rate the load probe found "
                    "sustainable before a 429/503 or the latency knee.", {},
                    load["sustainable_rate"]))
    return out
