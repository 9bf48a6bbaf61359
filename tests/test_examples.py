"""The prevention kit in examples/: validated with the real tools where they exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor import fleet
from tests.support.netns import _skip_or_fail

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KUBE = EXAMPLES / "kubernetes"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _skip_or_fail("promtool is not installed (Debian package: prometheus)")
    assert path is not None
    return path


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-sharded.yml"])
def test_promtool_check_config(name: str, tmp_path: Path) -> None:
    # promtool resolves rule_files and file_sd globs relative to the config: copy the kit
    kit = tmp_path / "kit"
    shutil.copytree(EXAMPLES, kit)
    proc = subprocess.run([promtool(), "check", "config", str(kit / name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_check_rules() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(EXAMPLES / "alerts.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"SUCCESS: \d+ rules found", proc.stdout)


def test_alerts_cover_what_the_issue_asks() -> None:
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load((EXAMPLES / "alerts.yml").read_text())["groups"]
    exprs = " ".join(r["expr"] for g in groups for r in g["rules"])
    for metric in ("ollama_doctor_check_success", "ollama_doctor_time_to_first_byte_seconds",
                   "ollama_doctor_model_load_seconds", 'code=~"429|503"',
                   "ollama_doctor_cause{severity"):
        assert metric in exprs, metric
    cause_rule = next(r for g in groups for r in g["rules"]
                      if r.get("alert") == "OllamaCausePresent")
    assert cause_rule["for"] == "5m"


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(\n")
    proc = subprocess.run([promtool(), "check", "rules", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0


def test_file_sd_example_is_a_fleet_targets_file() -> None:
    targets = fleet.load_targets(str(EXAMPLES / "targets" / "ollama.json"))
    assert len(targets) == 3 and all(t.model for t in targets)


def test_grafana_dashboard_structure() -> None:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
        assert key in dashboard, key
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    exprs = []
    for panel in dashboard["panels"]:
        for key in ("type", "title", "gridPos", "targets", "datasource"):
            assert key in panel, (panel.get("title"), key)
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"} and grid["x"] + grid["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        exprs += [t["expr"] for t in panel["targets"]]
    metrics = set(re.findall(r"ollama_doctor_[a-z_]+", " ".join(exprs)))
    assert {"ollama_doctor_check_success", "ollama_doctor_time_to_first_byte_seconds",
            "ollama_doctor_http_duration_seconds", "ollama_doctor_cause",
            "ollama_doctor_model_load_seconds", "ollama_doctor_model_gpu_fraction",
            "ollama_doctor_server_info"} <= metrics
    from ollama_doctor.metrics import PREFIX

    exported = {PREFIX + name for name in (
        "check_success", "check_duration_seconds", "probe_success", "probe_duration_seconds",
        "http_duration_seconds", "time_to_first_byte_seconds", "cause", "model_load_seconds",
        "model_gpu_fraction", "server_info", "rate_limit_per_second")}
    assert metrics <= exported, metrics - exported


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests: YAML with the fields the API server requires


def manifests() -> list[tuple[str, dict[str, Any]]]:
    yaml = pytest.importorskip("yaml")
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def containers_ok(spec: dict[str, Any], where: str) -> None:
    containers = spec["containers"]
    assert containers, where
    for container in containers:
        assert container["name"] and container["image"], where
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", container["name"]), where
        for probe_name in ("readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            if probe:
                handlers = {"exec", "httpGet", "tcpSocket", "grpc"} & set(probe)
                assert len(handlers) == 1, (where, probe_name)


def test_manifests_have_required_fields() -> None:
    docs = manifests()
    kinds = [doc["kind"] for _, doc in docs]
    assert {"Deployment", "CronJob", "HorizontalPodAutoscaler", "ConfigMap", "Service",
            "StatefulSet"} <= set(kinds)
    for name, doc in docs:
        where = f"{name}: {doc.get('kind')}"
        assert doc["apiVersion"] and doc["kind"], where
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"]), where
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            assert doc["apiVersion"] == "apps/v1", where
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items(), where
            containers_ok(spec["template"]["spec"], where)
            if doc["kind"] == "StatefulSet":
                assert spec["serviceName"], where
        elif doc["kind"] == "CronJob":
            assert doc["apiVersion"] == "batch/v1", where
            assert len(spec["schedule"].split()) == 5, where
            pod = spec["jobTemplate"]["spec"]["template"]["spec"]
            assert pod["restartPolicy"] in ("Never", "OnFailure"), where
            containers_ok(pod, where)
        elif doc["kind"] == "HorizontalPodAutoscaler":
            assert doc["apiVersion"] == "autoscaling/v2", where
            ref = spec["scaleTargetRef"]
            assert ref["apiVersion"] and ref["kind"] and ref["name"], where
            assert spec["maxReplicas"] >= spec.get("minReplicas", 1) >= 1, where
            for metric in spec["metrics"]:
                assert metric["type"] in ("Resource", "Pods", "Object", "External"), where
                body = metric[metric["type"][0].lower() + metric["type"][1:]]
                assert body["target"]["type"] in ("Utilization", "Value", "AverageValue")
        elif doc["kind"] == "Service":
            assert spec["ports"] and all("port" in p for p in spec["ports"]), where
        elif doc["kind"] == "ConfigMap":
            assert doc["data"], where


def test_kit_does_what_the_issue_asks() -> None:
    docs = dict((f"{n}/{d['kind']}", d) for n, d in manifests())
    ready = docs["ollama-readiness.yaml/Deployment"]
    probe = ready["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["exec"]["command"][:3] == ["ollama-doctor", "check", "--targets"]
    cron = docs["warmup-cronjob.yaml/CronJob"]
    command = " ".join(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                       ["containers"][0]["command"])
    assert "ollama-doctor probe warmup" in command
    cpu_mem = docs["hpa-cpu-memory.yaml/HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert {m["resource"]["name"] for m in cpu_mem} == {"cpu", "memory"}
    ttfb = docs["hpa-ttfb.yaml/HorizontalPodAutoscaler"]["spec"]["metrics"][0]
    assert ttfb["external"]["metric"]["name"] == "ollama_doctor_time_to_first_byte_seconds"
    yaml = pytest.importorskip("yaml")
    adapter = yaml.safe_load(docs["prometheus-adapter.yaml/ConfigMap"]["data"]["config.yaml"])
    assert adapter["externalRules"][0]["name"]["as"] == \
        "ollama_doctor_time_to_first_byte_seconds"
    sharded = yaml.safe_load((EXAMPLES / "prometheus-sharded.yml").read_text())
    actions = [r.get("action") for job in sharded["scrape_configs"]
               for r in job["relabel_configs"]]
    assert actions.count("hashmod") == 2
