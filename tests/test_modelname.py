"""Model names as Ollama reads them: parsing, matching, "did you mean", ``ollama list``."""

from __future__ import annotations

import pytest

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
