"""Model names as Ollama reads them: parsing, matching, "did you mean", ``ollama list``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ollama_doctor import modelname
from ollama_doctor.modelname import ModelName, parse


@pytest.mark.parametrize(("name", "expected"), [
    ("llama3.2", ModelName("llama3.2", "registry.ollama.ai", "library", "llama3.2", "latest")),
    ("llama3.2:1b", ModelName("llama3.2:1b", "registry.ollama.ai", "library", "llama3.2", "1b")),
    ("Llama3.2:Latest",
     ModelName("Llama3.2:Latest", "registry.ollama.ai", "library", "Llama3.2", "Latest")),
    ("jmorgan/mixtral", ModelName("jmorgan/mixtral", "registry.ollama.ai", "jmorgan", "mixtral",
                                  "latest")),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
     ModelName("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co", "bartowski",
               "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M")),
    ("registry.ollama.ai/library/mistral:7b",
     ModelName("registry.ollama.ai/library/mistral:7b", "registry.ollama.ai", "library",
               "mistral", "7b")),
    ("https://registry.ollama.ai/library/mistral",
     ModelName("https://registry.ollama.ai/library/mistral", "registry.ollama.ai", "library",
               "mistral", "latest")),
    ("localhost:5000/team/model:v1",
     ModelName("localhost:5000/team/model:v1", "localhost:5000", "team", "model", "v1")),
    ("llama3.2@sha256-abc", ModelName("llama3.2@sha256-abc", "registry.ollama.ai", "library",
                                      "llama3.2", "latest", "sha256-abc")),
])
def test_parse(name: str, expected: ModelName) -> None:
    assert parse(name) == expected


@pytest.mark.parametrize(("name", "shortest"), [
    ("llama3.2", "llama3.2:latest"),
    ("registry.ollama.ai/library/llama3.2:1b", "llama3.2:1b"),
    ("registry.ollama.ai/jmorgan/mixtral", "jmorgan/mixtral:latest"),
    ("hf.co/library/x", "hf.co/library/x:latest"),  # another host keeps the namespace
    ("hf.co/bartowski/Qwen-GGUF:Q8_0", "hf.co/bartowski/Qwen-GGUF:Q8_0"),
])
def test_shortest(name: str, shortest: str) -> None:
    assert parse(name).shortest == shortest


@pytest.mark.parametrize(("a", "b", "same"), [
    ("llama3.2", "llama3.2:latest", True),
    ("Llama3.2", "llama3.2:latest", True),  # S13: case variants match
    ("LLAMA3.2:LATEST", "llama3.2:latest", True),
    ("registry.ollama.ai/library/llama3.2", "llama3.2:latest", True),
    ("REGISTRY.OLLAMA.AI/Library/llama3.2:latest", "llama3.2:latest", True),
    ("llama3.2:1b", "llama3.2:latest", False),
    ("llama3.1", "llama3.2:latest", False),
    ("library/llama3.2", "llama3.2:latest", True),
    ("hf.co/bartowski/x:Q4_K_M", "hf.co/bartowski/X:q4_k_m", True),
    ("bartowski/x:Q4_K_M", "hf.co/bartowski/x:Q4_K_M", False),  # the host matters
    ("ollama.com/library/llama3.2", "llama3.2:latest", False),
])
def test_same(a: str, b: str, same: bool) -> None:
    assert modelname.same(a, b) is same


def test_find_returns_the_installed_spelling() -> None:
    installed = ["qwen3:8b", "llama3.2:latest"]
    assert modelname.find("Llama3.2", installed) == "llama3.2:latest"
    assert modelname.find("llama3.1", installed) is None
    assert modelname.find("qwen3", installed) is None  # :latest is not :8b


@pytest.mark.parametrize(("requested", "installed", "expected"), [
    # S13: the same model under another tag leads, then a similar spelling
    ("llama3.2:1b", ["llama3.1:8b", "llama3.2:latest"], ["llama3.2:latest", "llama3.1:8b"]),
    ("llama3.1", ["llama3.2:latest"], ["llama3.2:latest"]),
    ("llama3.1", ["qwen3:8b", "llama3.2:latest", "nomic-embed-text:latest"],
     ["llama3.2:latest"]),
    ("qwen3", ["qwen3:8b", "qwen3:0.6b", "qwen2.5:7b"], ["qwen3:8b", "qwen3:0.6b", "qwen2.5:7b"]),
    ("mistral", ["hf.co/TheBloke/mistral:Q4_K_M"], ["hf.co/TheBloke/mistral:Q4_K_M"]),
    ("gpt-4o", ["llama3.2:latest", "qwen3:8b"], []),  # a config value, not a model: no guess
    ("mistral", ["llama3.2:latest", "qwen3:8b"], []),
    ("anything", [], []),
])
def test_suggest(requested: str, installed: list[str], expected: list[str]) -> None:
    assert modelname.suggest(requested, installed) == expected


def test_suggest_is_bounded_and_prefers_the_closer_tag() -> None:
    installed = ["llama3.2:3b", "llama3.2:1b-instruct-q4_K_M", "llama3.2:latest", "llama3.2:1b-q8"]
    got = modelname.suggest("llama3.2:1b", installed, limit=2)
    assert got == ["llama3.2:1b-q8", "llama3.2:1b-instruct-q4_K_M"]


@pytest.mark.parametrize(("name", "cloud"), [
    ("gpt-oss:120b-cloud", True), ("qwen3-coder:480b-cloud", True), ("deepseek:cloud", True),
    ("GPT-OSS:120B-CLOUD", True), ("llama3.2", False), ("cloud", False),
    ("cloudy:latest", False), ("x:cloudier", False),
])
def test_is_cloud(name: str, cloud: bool) -> None:
    assert modelname.is_cloud(name) is cloud


@pytest.mark.parametrize(("name", "problems"), [
    ("llama3.2", []),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", []),
    ("", ["the model name is empty"]),
    ("llama3.2 ", ["it starts or ends with white space"]),
    ("llama 3.2", ["it contains white space"]),
    ("llama3.2:", ["the tag part is empty"]),
    ("llama3..2", ["the model part 'llama3..2' has characters Ollama does not allow"]),
    ("my.team/x", ["the namespace part 'my.team' has characters Ollama does not allow"]),
    ("gpt-4o!", ["the model part 'gpt-4o!' has characters Ollama does not allow"]),
])
def test_problems(name: str, problems: list[str]) -> None:
    assert modelname.problems(name) == problems


def test_parse_cli_list() -> None:
    text = (
        "NAME                       ID              SIZE      MODIFIED\n"
        "llama3.2:latest            a80c4f17acd5    2.0 GB    3 weeks ago\n"
        "nomic-embed-text:latest    0a109f422b47    274 MB    2 months ago\n"
        "\n"
    )
    assert modelname.parse_cli_list(text) == ["llama3.2:latest", "nomic-embed-text:latest"]
    assert modelname.parse_cli_list("NAME    ID    SIZE    MODIFIED\n") == []
    assert modelname.parse_cli_list("Error: could not connect to ollama server") == []
    assert modelname.parse_cli_list("") == []


# --------------------------------------------------------------------------------------------
# "did you mean" over a large store: the same answer as scoring every name, bounded work

def reference_suggest(requested: str, installed: Sequence[str], limit: int = 3,
                      cutoff: float = modelname.SUGGEST_CUTOFF) -> list[str]:
    """``suggest`` as it was before it was bounded: score every name, sort, deduplicate."""
    scored = [(modelname.score(requested, name), -idx, name)
              for idx, name in enumerate(installed)]
    picked = sorted((s for s in scored if s[0] >= cutoff), reverse=True)
    out: list[str] = []
    for _, _, name in picked:
        if name not in out:
            out.append(name)
        if len(out) >= limit:
            break
    return out


# small alphabets, so that names look alike, scores tie and parts repeat; Σ lower-cases by
# its context (σ or ς) and İ to two characters
_CHARS = "abcmodel0123.-_:ΣσİK"
_part = st.text(_CHARS, max_size=8)
_name = st.builds(
    lambda prefix, place, model, tag, digest: f"{prefix}{place}{model}{tag}{digest}",
    st.sampled_from(["", "", "", "http://", "https://", "HTTP://"]),
    st.sampled_from(["", "", "library/", "Library/", "team/", "registry.ollama.ai/library/",
                     "Registry.Ollama.AI/team/", "hf.co/bartowski/", "hf.co/library/",
                     "localhost:5000/Team/", "a/b/c/"]) | _part.map(lambda p: p + "/"),
    st.sampled_from(["llama3.2", "Llama3.2", "llama3.1", "qwen3", "model-000123", "modle-01"])
    | _part,
    st.sampled_from(["", "", ":latest", ":LATEST", ":1b", ":1b-instruct-q4_K_M", ":cloud",
                     ":", ":8b"]) | _part.map(lambda p: ":" + p),
    st.sampled_from(["", "", "", "@sha256-abc"]))


@st.composite
def _store(draw: st.DrawFn) -> tuple[str, list[str]]:
    requested = draw(_name | st.text(max_size=12))
    names = draw(st.lists(_name | st.text(max_size=12), max_size=30))
    # case variants, other tags and repeats of the requested name and of the store's names
    req = parse(requested)
    model, place = req.model, req.shortest.rpartition(":")[0].removesuffix(req.model)
    variants = [requested.upper(), requested.lower(), requested.swapcase(), requested + ":1b",
                requested + "-q8", requested + "-instruct-q4_K_M", requested.partition(":")[0],
                f"{place}{model}:1b-q8", f"{place}{model}:3b", f"{place}{model}:7b-q4",
                f"{place}{model}:{req.tag[:-1]}z", f"{place}{model}:z{req.tag}",
                f"{place}{model.upper()}:8b", f"team/{model}", f"hf.co/bartowski/{model}:Q4",
                f"{place}{model}x", f"{place}{model[:-1]}", f"hf.co/bartowski/{model}x:Q4",
                f"team/{model[1:]}", *names]
    extra = draw(st.lists(st.sampled_from(variants), max_size=10))
    installed = draw(st.permutations(names + extra))
    return requested, installed


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_store(), st.integers(-1, 6),
       st.sampled_from([modelname.SUGGEST_CUTOFF, 0.0, 0.5, 0.9, 0.92, 0.95, 1.0, 1.2, 1.3,
                        1.4, 1.45, 1.5, 2.0, 2.5])
       | st.floats(-1.0, 3.0))
@example(("llama3.2:1b", ["llama3.2:3b", "llama3.2:1b-instruct-q4_K_M", "llama3.2:1b-q8"]), 3,
         1.45)  # cut inside the range of an extended tag
@example(("m", ["m:latesz", "m:zlatest", "hf.co/x/m", "M"]), 3, 1.3)  # inside another tag's
@example(("hf.co/bartowski/abc:Q4", ["hf.co/bartowski/abd:Q4", "abc:Q4"]), 1, 0.9)
def test_suggest_is_the_reference(store: tuple[str, list[str]], limit: int,
                                  cutoff: float) -> None:
    requested, installed = store
    assert modelname.suggest(requested, installed, limit, cutoff) == \
        reference_suggest(requested, installed, limit, cutoff)


@settings(max_examples=300, deadline=None)
@given(st.text(_CHARS, max_size=14) | st.text(max_size=14),
       st.text(_CHARS, max_size=14) | st.text(max_size=14))
def test_the_bounds_of_a_ratio_are_upper_bounds(a: str, b: str) -> None:
    bounds = modelname._Bounds(a)
    ratio = modelname._ratio(a, b)
    # the longest common subsequence, by the textbook table
    row = [0] * (len(b) + 1)
    for ch in a:
        prev = row[:]
        for j, other in enumerate(b, 1):
            row[j] = prev[j - 1] + 1 if ch == other else max(prev[j], row[j - 1])
    assert bounds.by_lcs(b) == (2.0 * row[-1] / (len(a) + len(b)) if a or b else 1.0)
    assert bounds.by_alphabet(b) >= bounds.by_counts(b) >= bounds.by_lcs(b) >= ratio
    assert bounds.by_counts(b) == difflib.SequenceMatcher(None, a, b).quick_ratio()


def test_suggest_in_a_store_of_100000_scores_a_handful(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo against the 100,000 models of ``tests/test_bounds.py``'s store: the expected
    names (checked once against ``reference_suggest``, which scores all 100,000 and takes
    ~10 s), after scoring a handful of names fully."""
    installed = [f"model-{i:06d}:latest" for i in range(100_000)]
    calls: list[str] = []
    real_score = modelname.score

    def counted(requested: str, candidate: str) -> float:
        calls.append(candidate)
        return real_score(requested, candidate)

    monkeypatch.setattr(modelname, "score", counted)
    expected = {
        "modle-050000:latest": ["model-050000:latest", "model-005000:latest",
                                "model-010000:latest"],
        "model-012345:latset": ["model-012345:latest", "model-001234:latest",
                                "model-001235:latest"],
        "mdoel-099999": ["model-099999:latest", "model-009999:latest", "model-019999:latest"],
        "MODEL-05000": ["model-005000:latest", "model-015000:latest", "model-025000:latest"],
        "llama3.2": [],  # nothing alike: no name is scored at all
    }
    for typo, names in expected.items():
        calls.clear()
        assert modelname.suggest(typo, installed) == names
        assert len(calls) <= (100 if names else 0), (typo, len(calls))
    calls.clear()
    assert modelname.suggest("modle-050000:latest", installed, limit=1) == \
        ["model-050000:latest"]
    assert 1 <= len(calls) <= 100
