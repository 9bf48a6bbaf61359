"""Tests for ``clientlibs``: a real interpreter, a throwaway venv, fixture projects, pitfalls."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from ollama_doctor.causes import CAUSES
from ollama_doctor.clientlibs import (
    NPM_PACKAGES,
    PYTHON_PACKAGES,
    ClientLibError,
    Installed,
    as_text,
    from_project,
    from_python,
    in_range,
    pitfalls,
    spec_floor,
)
from ollama_doctor.clients import BY_NAME, CLIENTS

PROJECTS = Path(__file__).parent / "data" / "projects"


def _metadata_versions(python: str) -> dict[str, str]:
    """What the interpreter itself reports, asked independently of the module under test."""
    code = ("import json, importlib.metadata as m\nout = {}\n"
            f"for n in {list(PYTHON_PACKAGES)!r}:\n"
            "    try: out[n] = m.version(n)\n    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    import json

    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30,
                            check=True)
    data: dict[str, str] = json.loads(result.stdout)
    return data


def test_from_python_with_the_projects_own_interpreter() -> None:
    libs = from_python(sys.executable)
    expected = _metadata_versions(sys.executable)
    assert {lib.name: lib.version for lib in libs} == expected
    for lib in libs:
        assert lib.ecosystem == "pypi" and lib.spec == "installed"
        assert lib.source == f"python {sys.executable}"


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(root)
    return root / "bin" / "python"


def test_an_empty_venv_gives_an_empty_list(empty_venv: Path) -> None:
    assert from_python(empty_venv) == []


def test_a_venv_with_a_client_installed(empty_venv: Path, tmp_path: Path) -> None:
    # A distribution is its metadata: write one by hand (pip installs nothing, no network).
    site = next(empty_venv.parent.parent.glob("lib/python*/site-packages"))
    dist = site / "ollama-0.2.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ollama\nVersion: 0.2.1\n")
    try:
        libs = from_python(empty_venv)
        assert [(lib.name, lib.version, lib.client) for lib in libs] == [
            ("ollama", "0.2.1", "ollama-python")]
        rules = [f.evidence["rule"] for f in pitfalls(libs)]
        assert "ollama-python-legacy-embeddings" in rules
    finally:
        for child in dist.iterdir():
            child.unlink()
        dist.rmdir()


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing", "no such file"),
    (lambda p: p, "is a directory, not a Python interpreter"),
    (lambda p: _script(p, "echo", 'echo "$@"\n'), "not a Python interpreter (unexpected output)"),
    (lambda p: _script(p, "fails", "echo boom >&2; exit 3\n"),
     "exited with status 3: boom (is it a Python interpreter?)"),
])
def test_bad_interpreters_give_one_clear_line(tmp_path: Path, make: object,
                                              message: str) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ClientLibError) as info:
        from_python(target)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "python"
    path.write_text("")
    os.chmod(path, 0o644)
    with pytest.raises(ClientLibError, match="not executable"):
        from_python(path)


def test_a_hanging_interpreter_is_bounded(tmp_path: Path) -> None:
    hang = _script(tmp_path, "hang", "exec sleep 60\n")
    start = time.monotonic()
    with pytest.raises(ClientLibError, match=r"did not finish within 1 s"):
        from_python(hang, timeout=1)
    assert time.monotonic() - start < 15  # generous: only catches a hang


def test_a_flooding_interpreter_is_bounded(tmp_path: Path) -> None:
    flood = _script(tmp_path, "flood", "exec yes\n")
    with pytest.raises(ClientLibError, match="printed more than 65536 bytes"):
        from_python(flood, timeout=20)


def _rows(libs: list[Installed]) -> list[tuple[str, str, str | None, str, str]]:
    return [(lib.ecosystem, lib.name, lib.version, lib.spec, lib.source) for lib in libs]


def test_requirements_files() -> None:
    assert _rows(from_project(PROJECTS / "requirements")) == [
        ("pypi", "langchain-ollama", "0.2.0", "==0.2.0", "requirements-dev.txt"),
        ("pypi", "ollama", "0.2.1", "==0.2.1", "requirements.txt"),
        ("pypi", "openai", None, ">=1.30,<2", "requirements.txt"),
        ("pypi", "litellm", None, "any", "requirements.txt"),
    ]


def test_pep621_pyproject() -> None:
    assert _rows(from_project(PROJECTS / "pep621")) == [
        ("pypi", "ollama", None, ">=0.4.7", "pyproject.toml"),
        ("pypi", "llama-index-llms-ollama", "0.5.2", "==0.5.2", "pyproject.toml"),
        ("pypi", "openai", "1.54.0", "==1.54.0", "pyproject.toml"),
    ]


def test_poetry_project_and_lock() -> None:
    assert _rows(from_project(PROJECTS / "poetry")) == [
        ("pypi", "ollama", None, "^0.3.3", "pyproject.toml"),
        ("pypi", "langchain-ollama", "0.1.3", "0.1.3", "pyproject.toml"),
        ("pypi", "litellm", "1.52.0", "1.52.0", "pyproject.toml"),
        ("pypi", "ollama", "0.3.3", "==0.3.3", "poetry.lock"),
        ("pypi", "langchain-ollama", "0.1.3", "==0.1.3", "poetry.lock"),
    ]


def test_uv_lock() -> None:
    assert _rows(from_project(PROJECTS / "uv")) == [
        ("pypi", "ollama", None, "any", "pyproject.toml"),
        ("pypi", "openai", None, "any", "pyproject.toml"),
        ("pypi", "ollama", "0.2.0", "==0.2.0", "uv.lock"),
        ("pypi", "openai", "1.54.3", "==1.54.3", "uv.lock"),
    ]


def test_npm_package_json_and_lock_v3() -> None:
    libs = from_project(PROJECTS / "npm")
    assert _rows(libs) == [
        ("npm", "ollama", None, "^0.5.9", "package.json"),
        ("npm", "openai", "4.73.0", "4.73.0", "package.json"),
        ("npm", "@langchain/ollama", None, "~0.1.2", "package.json"),
        ("npm", "ollama-ai-provider", "1.2.0", "1.2.0", "package.json"),
        ("npm", "ollama", "0.5.11", "0.5.11", "package-lock.json"),
        ("npm", "openai", "4.73.0", "4.73.0", "package-lock.json"),
        ("npm", "@langchain/ollama", "0.1.2", "0.1.2", "package-lock.json"),
        ("npm", "ollama-ai-provider", "1.2.0", "1.2.0", "package-lock.json"),
    ]
    assert {lib.client for lib in libs} == {"ollama-js", "openai-node", "langchain-js",
                                            "ollama-ai-provider"}


def test_npm_lock_v1_and_nothing_relevant() -> None:
    assert _rows(from_project(PROJECTS / "npm-lock-v1")) == [
        ("npm", "ollama", "0.4.9", "0.4.9", "package-lock.json")]
    assert from_project(PROJECTS / "none") == []


def test_bad_project_input() -> None:
    with pytest.raises(ClientLibError, match=r"pyproject.toml: not valid TOML"):
        from_project(PROJECTS / "broken-toml")
    with pytest.raises(ClientLibError, match="no such directory"):
        from_project(PROJECTS / "absent")
    with pytest.raises(ClientLibError, match="not a directory"):
        from_project(PROJECTS / "none" / "requirements.txt")


def test_pitfalls_by_version() -> None:
    old = from_project(PROJECTS / "uv")  # ollama 0.2.0 locked, openai unpinned
    findings = pitfalls(old)
    by_rule = {(f.evidence["rule"], f.evidence["library"]["source"]): f for f in findings}
    legacy = by_rule[("ollama-python-legacy-embeddings", "uv.lock")]
    assert legacy.cause == "ollama-outdated"
    assert legacy.fix[0].commands == ("pip install -U 'ollama>=0.3'",)
    assert legacy.confidence.value == "high"
    # "any" has no floor: the version-specific rule is not claimed for the unpinned entry.
    assert ("ollama-python-legacy-embeddings", "pyproject.toml") not in by_rule
    assert ("ollama-python-no-timeout", "pyproject.toml") in by_rule
    new = pitfalls(from_project(PROJECTS / "pep621"))  # ollama>=0.4.7
    assert "ollama-python-legacy-embeddings" not in {f.evidence["rule"] for f in new}
    assert "llama-index-timeout" in {f.evidence["rule"] for f in new}


def test_every_pitfall_names_a_known_cause_and_client() -> None:
    packages = {("pypi", p) for p in PYTHON_PACKAGES} | {("npm", p) for p in NPM_PACKAGES}
    for family in CLIENTS:
        for rule in family.pitfalls:
            assert rule.cause in CAUSES, rule.id
            assert set(family.packages) <= packages, rule.id
            assert rule.fix and rule.source
            if rule.versions:
                in_range("1.0.0", rule.versions)  # parses
    for lib in from_project(PROJECTS / "npm") + from_project(PROJECTS / "requirements"):
        assert lib.client in BY_NAME
    with_rules = {p for family in CLIENTS if family.pitfalls for p in family.packages}
    assert with_rules == packages


@pytest.mark.parametrize(("version", "rng", "inside"), [
    ("0.2.1", "<0.3.0", True), ("0.3.0", "<0.3.0", False), ("0.3", "<0.3.0", False),
    ("0.4.7rc1", ">=0.4,<0.5", True), ("1.0", ">=0.4,<0.5", False), ("0.3.3", "", True),
])
def test_in_range(version: str, rng: str, inside: bool) -> None:
    assert in_range(version, rng) is inside


@pytest.mark.parametrize(("spec", "floor"), [
    ("^0.5.9", "0.5.9"), ("~0.1.2", "0.1.2"), (">=1.30,<2", "1.30"), ("any", None),
    ("<0.3", None), ("==0.2.1", "0.2.1"), ("~=0.4.1", "0.4.1"),
])
def test_spec_floor(spec: str, floor: str | None) -> None:
    assert spec_floor(spec) == floor


def test_as_text() -> None:
    libs = from_project(PROJECTS / "npm-lock-v1")
    assert as_text(libs, pitfalls(libs)) == "\n".join([
        "Client libraries:",
        "  ollama 0.4.9 (package-lock.json)",
        "  ! ollama 0.4.9 (package-lock.json): ollama-js does not read OLLAMA_HOST: it calls "
        "http://127.0.0.1:11434 unless given a host.",
        "      Fix: Pass the host explicitly.",
        "        new Ollama({ host: process.env.OLLAMA_HOST })",
        "  ! ollama 0.4.9 (package-lock.json): ollama-js uses Node's fetch (undici): a "
        "non-streamed answer that takes more than 300 s to start fails with "
        "UND_ERR_HEADERS_TIMEOUT; proxy variables are ignored unless NODE_USE_ENV_PROXY=1.",
        "      Fix: Stream long generations, or warm the model first.",
        "        stream: true",
    ])
    assert as_text([], []).startswith("No Ollama client library found (ollama, openai")
