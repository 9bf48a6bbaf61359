"""One table of what Ollama says: every reader gives the same cause for the same words."""

from __future__ import annotations

import re

import pytest

from ollama_doctor import errortext, logs, ollama_messages
from ollama_doctor.causes import CAUSES
from ollama_doctor.ollama_messages import MESSAGES, Message, classify

SAMPLES = [(row, sample) for row in MESSAGES for sample in row.samples]


@pytest.mark.parametrize(("row", "sample"), SAMPLES,
                         ids=[f"{row.id}:{sample[:40]}" for row, sample in SAMPLES])
def test_every_reader_gives_the_rows_cause(row: Message, sample: str) -> None:
    assert classify(sample) == row.cause  # the table (what the warm-up probe calls)
    assert errortext.analyse(sample).causes[0] == row.cause  # a pasted error
    if row.id in logs.TABLE_ROWS:  # a server log line
        assert logs.line_cause(sample) == row.cause
    else:  # only an API answer carries it: the log reader has nothing to say
        assert row.where == "answer"
        assert logs.line_cause(sample) is None


def test_every_log_only_row_is_read_by_the_log_reader() -> None:
    assert {r.id for r in MESSAGES if r.where == "log"} <= logs.TABLE_ROWS


def test_rows_are_well_formed() -> None:
    assert len({r.id for r in MESSAGES}) == len(MESSAGES)
    for row in MESSAGES:
        assert row.cause in CAUSES, row.id
        assert row.samples, row.id
        assert row.where in ("answer", "log"), row.id
        # a source citation names a file of Ollama's tree (or gin / Go) and a version
        assert re.search(r"\.go\b|gin|Go net/http", row.source), row.id
        assert re.search(r"v0\.\d|all versions", row.source), row.id


@pytest.mark.parametrize(("message", "cause"), [
    # an OOM reason inside a runner crash is the memory; an unknown architecture is the version
    ("llama-server process has terminated: exit status 2: cudaMalloc failed: out of memory",
     "out-of-memory"),
    ("llama runner process has terminated: error loading model: unknown model architecture: "
     "'gemma3'", "ollama-outdated"),
    ("timed out waiting for llama runner to start - progress 0.00 - ", "slow-model-load"),
    ("an error was encountered while running the model: CUDA error: out of memory",
     "out-of-memory"),
    # the wordings the readers used to disagree on (issue 9 §2)
    ("model is too large for system memory", "out-of-memory"),
    ("unable to load full model on GPU", "out-of-memory"),
    ("ErrorOutOfDeviceMemory", "out-of-memory"),
    ("CUDA error: out of device memory", "out-of-memory"),
    ("runtime OOM detected; expiring loaded models", "out-of-memory"),
    ("something the server never says", None),
    ("", None),
])
def test_first_row_decides(message: str, cause: str | None) -> None:
    assert classify(message) == cause


def test_matches_lists_every_row_in_order() -> None:
    ids = [r.id for r in ollama_messages.matches(
        "llama-server process has terminated: signal: killed")]
    assert ids == ["oom-killed", "runner-terminated"]
    assert ollama_messages.match("nothing") is None
