"""The one client table: ``clients.CLIENTS`` rows carry the packages that install them and their
version-ranged pitfalls, and ``clientlibs.pitfalls`` reads nothing else."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import ollama_doctor
from ollama_doctor import clientlibs, clients
from ollama_doctor.causes import CAUSES
from ollama_doctor.clientlibs import NPM_PACKAGES, PYTHON_PACKAGES, Installed, pitfalls
from ollama_doctor.clients import BY_NAME, BY_PACKAGE, CLIENTS, ClientFamily, Pitfall
from tests.conftest import CliRun

LISTED = [("pypi", p) for p in PYTHON_PACKAGES] + [("npm", p) for p in NPM_PACKAGES]


# -- one row per package ----------------------------------------------------------------------


def test_every_package_the_issue_lists_maps_to_exactly_one_row() -> None:
    assert sorted(LISTED) == sorted([
        ("pypi", "ollama"), ("pypi", "openai"), ("pypi", "langchain-ollama"),
        ("pypi", "llama-index-llms-ollama"), ("pypi", "litellm"), ("npm", "ollama"),
        ("npm", "openai"), ("npm", "@langchain/ollama"), ("npm", "ollama-ai-provider")])
    owners = {package: [c.name for c in CLIENTS if package in c.packages] for package in LISTED}
    assert owners == {
        ("pypi", "ollama"): ["ollama-python"], ("pypi", "openai"): ["openai-python"],
        ("pypi", "langchain-ollama"): ["langchain-ollama"],
        ("pypi", "llama-index-llms-ollama"): ["llama-index"], ("pypi", "litellm"): ["litellm"],
        ("npm", "ollama"): ["ollama-js"], ("npm", "openai"): ["openai-node"],
        ("npm", "@langchain/ollama"): ["langchain-js"],
        ("npm", "ollama-ai-provider"): ["ollama-ai-provider"]}
    # No row names a package the detector cannot find.
    assert set(BY_PACKAGE) == set(LISTED)
    assert {package: names[0] for package, names in owners.items()} == clientlibs.CLIENT_OF


def _fields(family: ClientFamily) -> tuple[object, ...]:
    return (family.language, family.proxy_family, family.reads_ollama_host,
            family.reads_api_key, family.host_env, family.key_env, family.base_path,
            family.default_timeout_s, family.retries)


# The values read from each library's own source (clients.py cites file, function, version).
@pytest.mark.parametrize(("name", "fields"), [
    # llama_index/llms/ollama/base.py: DEFAULT_REQUEST_TIMEOUT = 30.0 (0.1.0, 0.3.0, 0.11.0).
    ("llama-index", ("python", "httpx", False, True, "", "OLLAMA_API_KEY", "", 30.0, 0)),
    # litellm main.py completion: timeout 600, OLLAMA_API_BASE, num_retries None.
    ("litellm", ("python", "httpx", False, True, "OLLAMA_API_BASE", "OLLAMA_API_KEY", "",
                 600.0, 0)),
    # @langchain/ollama ChatOllama: ollama-js over Node's fetch; OLLAMA_BASE_URL from 1.1.0.
    ("langchain-js", ("node", "node", False, False, "OLLAMA_BASE_URL", "", "", 300.0, 0)),
    # ollama-ai-provider createOllama: baseURL …/api; the AI SDK's maxRetries ?? 2.
    ("ollama-ai-provider", ("node", "node", False, False, "", "", "/api", 300.0, 2)),
])
def test_new_rows_hold_what_the_libraries_do(name: str, fields: tuple[object, ...]) -> None:
    assert _fields(BY_NAME[name]) == fields


@pytest.mark.parametrize(("typed", "name"), [
    ("llama-index-llms-ollama", "llama-index"), ("LlamaIndex", "llama-index"),
    ("@langchain/ollama", "langchain-js"), ("litellm", "litellm"),
    ("ollama-ai-provider", "ollama-ai-provider"),
])
def test_client_aliases(typed: str, name: str) -> None:
    assert clients.get(typed).name == name


# -- one pitfall table ------------------------------------------------------------------------


def _pitfall_calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == "Pitfall"]


def test_pitfalls_live_only_in_the_client_rows() -> None:
    """Fails when a second pitfall table appears: every ``Pitfall(...)`` in the package is written
    inside a ``ClientFamily(...)`` row of ``CLIENTS``, and no module-level name but ``CLIENTS``
    holds one."""
    package = Path(ollama_doctor.__file__).parent
    outside: list[str] = []
    inside = 0
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = _pitfall_calls(tree)
        if path.name == "clients.py":
            table = [node for node in tree.body if isinstance(node, ast.AnnAssign)
                     and isinstance(node.target, ast.Name) and node.target.id == "CLIENTS"]
            assert len(table) == 1
            rows = [node for node in ast.walk(table[0]) if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name) and node.func.id == "ClientFamily"]
            in_rows = {id(call) for row in rows for call in _pitfall_calls(row)}
            inside = len(in_rows)
            calls = [call for call in calls if id(call) not in in_rows]
        outside += [f"{path.relative_to(package)}:{call.lineno}" for call in calls]
    assert outside == []
    reachable = [p for c in CLIENTS for p in c.pitfalls]
    assert inside == len(reachable) > 0
    assert len({p.id for p in reachable}) == len(reachable)  # ids are unique
    for module in (clients, clientlibs):
        for name, value in vars(module).items():
            values = (value.values() if isinstance(value, dict) else
                      value if isinstance(value, (tuple, list, set, frozenset)) else (value,))
            holds = any(isinstance(v, Pitfall) for v in values)
            assert not holds, f"{module.__name__}.{name} holds pitfalls outside CLIENTS"
    assert not hasattr(clientlibs, "PITFALLS")


def test_every_pitfall_is_well_formed() -> None:
    for family in CLIENTS:
        for rule in family.pitfalls:
            assert family.packages, rule.id  # a version range needs a package to refer to
            assert rule.cause in CAUSES, rule.id
            assert rule.message and rule.fix and rule.source, rule.id
            if rule.versions:
                clientlibs.in_range("1.0.0", rule.versions)  # parses


# -- every family with pitfalls, at one version -------------------------------------------------

FAMILY_CASES: list[tuple[str, str, str, set[str]]] = [
    ("pypi", "ollama", "0.2.1", {
        "ollama-python-no-timeout", "ollama-python-proxy-env", "ollama-python-import-proxy",
        "ollama-python-port-80", "ollama-python-legacy-embeddings", "ollama-python-no-api-key"}),
    ("pypi", "ollama", "0.6.3", {
        "ollama-python-no-timeout", "ollama-python-proxy-env", "ollama-python-import-proxy",
        "ollama-python-port-80"}),
    ("pypi", "openai", "1.54.0", {
        "openai-python-base-url", "openai-python-retries", "openai-python-proxy-env"}),
    ("pypi", "langchain-ollama", "0.2.0", {"langchain-ollama-no-timeout"}),
    ("pypi", "llama-index-llms-ollama", "0.11.0", {"llama-index-timeout", "llama-index-base-url"}),
    ("pypi", "litellm", "1.61.1", {"litellm-api-base", "litellm-connection-error"}),
    ("pypi", "litellm", "1.110.2", {"litellm-api-base"}),
    ("npm", "ollama", "0.5.11", {"ollama-js-host", "ollama-js-headers-timeout"}),
    ("npm", "openai", "4.73.0", {"openai-node-base-url"}),
    ("npm", "@langchain/ollama", "0.1.2", {"langchain-js-host"}),
    ("npm", "@langchain/ollama", "1.3.0", {"langchain-js-host", "langchain-js-base-url-env"}),
    ("npm", "ollama-ai-provider", "1.2.0", {
        "ollama-ai-provider-base-url", "ollama-ai-provider-retries"}),
]


def _lib(ecosystem: str, name: str, version: str | None, spec: str | None = None) -> Installed:
    return Installed(ecosystem, name, version, spec or f"=={version}", "test",
                     clientlibs.CLIENT_OF[(ecosystem, name)])


def test_the_cases_cover_every_family_with_pitfalls() -> None:
    covered = {BY_PACKAGE[(eco, name)].name for eco, name, _, _ in FAMILY_CASES}
    assert covered == {c.name for c in CLIENTS if c.pitfalls}
    named = set().union(*(ids for _, _, _, ids in FAMILY_CASES))
    assert named == {p.id for c in CLIENTS for p in c.pitfalls}


@pytest.mark.parametrize(("ecosystem", "name", "version", "expected"), FAMILY_CASES)
def test_every_family_turns_into_its_findings(ecosystem: str, name: str, version: str,
                                              expected: set[str]) -> None:
    family = BY_PACKAGE[(ecosystem, name)]
    findings = pitfalls([_lib(ecosystem, name, version)])
    assert {f.evidence["rule"] for f in findings} == expected
    rules = {p.id: p for p in family.pitfalls}
    for finding in findings:
        rule = rules[finding.evidence["rule"]]
        assert (finding.cause, finding.severity, finding.confidence.value) == (
            rule.cause, rule.severity, "high")
        assert finding.evidence["client"] == family.name
        assert finding.evidence["applies_to"] == (rule.versions or "all versions")
        assert finding.message == f"{name} {version} (test): {rule.message}"
        # one step per kind of line (shell, code), the fix's text on the first
        assert finding.fix[0].text == rule.fix
        assert [c for step in finding.fix for c in step.commands] == list(rule.commands)
        assert all(len({getattr(c, "kind", None) for c in step.commands}) <= 1
                   for step in finding.fix)


# -- every version boundary: just below, at, just above -----------------------------------------

BOUNDARIES: list[tuple[str, str, str, list[tuple[str, bool]]]] = [
    ("pypi", "ollama", "ollama-python-legacy-embeddings",
     [("0.2.1", True), ("0.3.0", False), ("0.3.1", False)]),
    ("pypi", "ollama", "ollama-python-no-api-key",
     [("0.5.4", True), ("0.6.0", False), ("0.6.1", False)]),
    ("pypi", "litellm", "litellm-connection-error",
     [("1.99.4", True), ("1.100.0", False), ("1.100.1", False)]),
    ("npm", "@langchain/ollama", "langchain-js-base-url-env",
     [("1.0.3", False), ("1.1.0", True), ("1.1.1", True)]),
]


def test_the_boundaries_cover_every_version_range() -> None:
    ranged = {(eco, pkg, p.id) for c in CLIENTS for p in c.pitfalls if p.versions
              for eco, pkg in c.packages}
    assert ranged == {(eco, pkg, rule) for eco, pkg, rule, _ in BOUNDARIES}


@pytest.mark.parametrize(("ecosystem", "name", "rule", "version", "applies"), [
    (eco, name, rule, version, applies)
    for eco, name, rule, points in BOUNDARIES for version, applies in points])
def test_version_boundaries(ecosystem: str, name: str, rule: str, version: str,
                            applies: bool) -> None:
    fired = {f.evidence["rule"] for f in pitfalls([_lib(ecosystem, name, version)])}
    assert (rule in fired) is applies


@pytest.mark.parametrize(("ecosystem", "name", "spec", "rule", "confidence"), [
    # A range's floor stands for the version, with medium confidence; no floor, no claim.
    ("pypi", "litellm", ">=1.61,<2", "litellm-connection-error", "medium"),
    ("pypi", "litellm", ">=1.100.0", "litellm-connection-error", None),
    ("pypi", "litellm", "any", "litellm-connection-error", None),
    ("npm", "@langchain/ollama", "^1.1.0", "langchain-js-base-url-env", "medium"),
    ("npm", "@langchain/ollama", "~1.0.3", "langchain-js-base-url-env", None),
    ("pypi", "ollama", "<0.6", "ollama-python-no-api-key", None),
])
def test_ranges_against_unpinned_specs(ecosystem: str, name: str, spec: str, rule: str,
                                       confidence: str | None) -> None:
    found = {f.evidence["rule"]: f.confidence.value
             for f in pitfalls([_lib(ecosystem, name, None, spec)])}
    assert found.get(rule) == confidence


# -- each new package from a project folder -----------------------------------------------------


def test_new_python_packages_from_requirements_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "llama-index-llms-ollama==0.11.0\nlitellm==1.99.4  # pinned\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1"\n'
        'dependencies = ["litellm>=1.100.0", "llama_index_llms_ollama~=0.3.0"]\n')
    libs = clientlibs.from_project(tmp_path)
    assert [(lib.name, lib.version, lib.spec, lib.source, lib.client) for lib in libs] == [
        ("llama-index-llms-ollama", "0.11.0", "==0.11.0", "requirements.txt", "llama-index"),
        ("litellm", "1.99.4", "==1.99.4", "requirements.txt", "litellm"),
        ("litellm", None, ">=1.100.0", "pyproject.toml", "litellm"),
        ("llama-index-llms-ollama", None, "~=0.3.0", "pyproject.toml", "llama-index"),
    ]
    found = [(f.evidence["rule"], f.evidence["library"]["source"], f.cause, f.confidence.value)
             for f in pitfalls(libs)]
    assert found == [
        ("llama-index-timeout", "requirements.txt", "slow-model-load", "high"),
        ("llama-index-base-url", "requirements.txt", "ipv6-localhost", "high"),
        ("litellm-api-base", "requirements.txt", "client-parsing-differs", "high"),
        ("litellm-connection-error", "requirements.txt", "bad-gateway", "high"),
        ("litellm-api-base", "pyproject.toml", "client-parsing-differs", "high"),
        ("llama-index-timeout", "pyproject.toml", "slow-model-load", "high"),
        ("llama-index-base-url", "pyproject.toml", "ipv6-localhost", "high"),
    ]


def test_new_npm_packages_from_package_json_and_lock(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {
        "@langchain/ollama": "^1.1.0", "ollama-ai-provider": "1.2.0", "express": "^4"}}))
    (tmp_path / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app"},
        "node_modules/@langchain/ollama": {"version": "1.0.3"},
        "node_modules/@langchain/ollama/node_modules/ollama": {"version": "0.5.6"},
        "node_modules/ollama-ai-provider": {"version": "1.2.0"}}}))
    libs = clientlibs.from_project(tmp_path)
    assert [(lib.name, lib.version, lib.spec, lib.source, lib.client) for lib in libs] == [
        ("@langchain/ollama", None, "^1.1.0", "package.json", "langchain-js"),
        ("ollama-ai-provider", "1.2.0", "1.2.0", "package.json", "ollama-ai-provider"),
        ("@langchain/ollama", "1.0.3", "1.0.3", "package-lock.json", "langchain-js"),
        ("ollama-ai-provider", "1.2.0", "1.2.0", "package-lock.json", "ollama-ai-provider"),
    ]
    found = [(f.evidence["rule"], f.evidence["library"]["source"], f.confidence.value)
             for f in pitfalls(libs)]
    assert found == [
        ("langchain-js-host", "package.json", "high"),
        ("langchain-js-base-url-env", "package.json", "medium"),  # ^1.1.0: from its floor
        ("ollama-ai-provider-base-url", "package.json", "high"),
        ("ollama-ai-provider-retries", "package.json", "high"),
        ("langchain-js-host", "package-lock.json", "high"),  # 1.0.3 reads no variable
        ("ollama-ai-provider-base-url", "package-lock.json", "high"),
        ("ollama-ai-provider-retries", "package-lock.json", "high"),
    ]


# -- what `probes` shows -------------------------------------------------------------------------

OLD_KEYS = {"name", "label", "language", "proxy_family", "reads_ollama_host", "reads_api_key",
            "host_env", "key_env", "base_path", "default_timeout_s", "retries",
            "default_port_rule", "sends_origin", "note"}


def test_rules_add_packages_and_pitfalls_and_keep_the_other_keys() -> None:
    for family in CLIENTS:
        row = family.rules()
        assert set(row) == OLD_KEYS | {"packages", "pitfalls"}
        json.dumps(row)  # plain data
    row = BY_NAME["ollama-python"].rules()
    assert row["packages"] == [{"ecosystem": "pypi", "name": "ollama"}]
    legacy = next(p for p in row["pitfalls"]  # type: ignore[attr-defined]
                  if p["id"] == "ollama-python-legacy-embeddings")
    assert legacy == {
        "id": "ollama-python-legacy-embeddings", "versions": "<0.3.0",
        "cause": "ollama-outdated", "severity": "warning",
        "message": "ollama-python before 0.3.0 has only `embeddings()`, the legacy "
                   "/api/embeddings endpoint (one prompt per call, no truncate, no batch).",
        "fix": "Upgrade and call `ollama.embed(model=…, input=[…])`.",
        "commands": ["pip install -U 'ollama>=0.3'"],
        "source": "ollama/_client.py (embed added in 0.3.0)"}
    assert BY_NAME["curl"].rules()["pitfalls"] == []


def test_probes_json_shows_the_pitfalls_with_their_versions(cli: Callable[..., CliRun]) -> None:
    run = cli("probes", "--json")
    assert run.code == 0
    rows = {row["name"]: row for row in json.loads(run.stdout)["clients"]}
    assert {p["id"]: p["versions"] for p in rows["litellm"]["pitfalls"]} == {
        "litellm-api-base": "all versions", "litellm-connection-error": "<1.100.0"}
    assert (rows["llama-index"]["default_timeout_s"], rows["ollama-ai-provider"]["base_path"],
            rows["langchain-js"]["host_env"]) == (30.0, "/api", "OLLAMA_BASE_URL")
