"""The real-client tier: what real client libraries print in real failure situations.

The fixtures (``tests/clients/fixtures/<situation>/<client>.txt``, ``manifest.json``) are what
``tests/clients/record.py`` stored when the real clients (versions in ``pins.py``) made one
ordinary call in each situation of ``situations.py``. For every fixture whose call failed:

1. offline (no root): ``errortext.analyse`` of the text has the expected cause in its top 3
   when the text carries the evidence, among its candidates always; names the client family
   that printed it; and any target it reads is the server the client called;
2. live from fixtures (root + netns; ``-m realclients``, about 100 s, so not in the default
   selection): the situation is rebuilt and ``check --json --error-file FIXTURE`` (no
   ``--host``, except for ollama-js errors, which show no address at all) names the expected
   cause first, exits 1, and probes the server the client called;
3. ``-m realclients`` (CI): the pinned clients are installed, every situation is re-recorded
   into a temporary folder, and 1 and 2 run on the fresh texts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients import checks
from tests.clients.apps import CLIENTS
from tests.clients.situations import BY_ID, SECRET, SITUATIONS

ENTRIES = checks.load_manifest()
FAILING = checks.failing(ENTRIES)


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['situation']}/{entry['client']}"


def test_manifest_covers_every_situation_and_client() -> None:
    assert ENTRIES, "no fixtures: run python tests/clients/record.py --install --record"
    got = {(e["situation"], e["client"]) for e in ENTRIES}
    want = {(s.id, c) for s in SITUATIONS for c in CLIENTS}
    assert want - got == set()
    for entry in ENTRIES:
        assert (checks.FIXTURES / entry["file"]).is_file(), entry["file"]
        assert entry["evidence"] in ("text", "live")
        situation = BY_ID[entry["situation"]]
        assert entry["target"] == situation.target(entry["client"])
        # A call that got an answer where it should not means the situation was not built.
        assert entry["outcome"] != "succeeded" or entry["client"] in situation.may_succeed, \
            f"{_id(entry)} succeeded"


def test_fixtures_hold_no_secret_and_no_local_path() -> None:
    """The auth situation's token is never given to a client, so no client can print it; and
    paths are rewritten to /home/user/app (fixtures do not depend on this machine)."""
    for entry in ENTRIES:
        text = (checks.FIXTURES / entry["file"]).read_text()
        assert SECRET not in text and "Bearer " not in text, entry["file"]
        assert SECRET not in json.dumps(entry), entry["file"]
        assert "/root/" not in text and "real-clients" not in text, entry["file"]


# -- 1. offline ----------------------------------------------------------------------------

def _offline(entry: dict[str, Any], text: str) -> list[str]:
    """What the offline reading of ``text`` got wrong (empty: nothing)."""
    if checks.printed_nothing(text):
        pytest.skip("the call printed nothing: there is no text to read offline")
    return checks.offline(entry, text).problems


@pytest.mark.parametrize("entry", FAILING, ids=_id)
def test_offline_reads_the_fixture(entry: dict[str, Any]) -> None:
    text = (checks.FIXTURES / entry["file"]).read_text()
    problems = _offline(entry, text)
    assert problems == [], (
        f"{_id(entry)} ({entry['evidence']} evidence): {'; '.join(problems)}\n{text}")


# -- 2. live, from the fixtures --------------------------------------------------------------

def _selected(request: pytest.FixtureRequest, name: str) -> list[Any]:
    """The parameter values of the tests of this session named ``name`` (after -k, -m…)."""
    out = []
    for item in request.session.items:
        if getattr(item, "originalname", None) == name:
            out.append(item.callspec.params)  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="session")
def live_from_fixtures(request: pytest.FixtureRequest) -> dict[tuple[str, str], checks.Live]:
    """Every selected fixture checked live: all situations built at once, a few side by side."""
    from tests.support.netns import require_netns

    require_netns()
    chosen = [p["entry"] for p in _selected(request, "test_check_diagnoses_the_fixture_live")]
    return checks.live(chosen)


def _assert_live(entry: dict[str, Any], result: checks.Live, text: str) -> None:
    assert not result.problems, (
        f"{_id(entry)}: {'; '.join(result.problems)}\n{result.error}\n--- fixture ---\n{text}")


@pytest.mark.realclients  # ~100 s of namespaces: the real-client step of .ci/run, not the default
@pytest.mark.netns
@pytest.mark.timeout(900)  # the first test builds every situation and runs all the checks
@pytest.mark.parametrize("entry", FAILING, ids=_id)
def test_check_diagnoses_the_fixture_live(
        entry: dict[str, Any], live_from_fixtures: dict[tuple[str, str], checks.Live]) -> None:
    result = live_from_fixtures[(entry["situation"], entry["client"])]
    _assert_live(entry, result, (checks.FIXTURES / entry["file"]).read_text())


# -- 3. the real clients, live ---------------------------------------------------------------

@dataclass
class Fresh:
    out: Path
    entries: dict[tuple[str, str], dict[str, Any]]
    live: dict[tuple[str, str], checks.Live]


@pytest.fixture(scope="session")
def fresh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    """Install the pinned clients (``ODT_NEWEST_CLIENTS=1``: the newest releases), record the
    selected situations with them into a temporary folder, and check the failing calls live."""
    from tests.clients import record
    from tests.support.netns import require_netns

    require_netns()
    clients = record.install(newest=os.environ.get("ODT_NEWEST_CLIENTS") == "1")
    out = tmp_path_factory.mktemp("real-clients")
    wanted = {p["situation"] for p in _selected(request, "test_real_client_live")}
    situations = [s for s in SITUATIONS if s.id in wanted]
    entries = record.record(clients, out, situations, list(CLIENTS), jobs=2, log=False)
    failing = checks.failing(entries)
    return Fresh(out, {(e["situation"], e["client"]): e for e in entries},
                 checks.live(failing, out))


@pytest.mark.realclients
@pytest.mark.netns
@pytest.mark.timeout(1500)  # the first test records every situation, then checks them live
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("situation", [s.id for s in SITUATIONS])
def test_real_client_live(situation: str, client: str, fresh: Fresh) -> None:
    entry = fresh.entries[(situation, client)]
    if entry["outcome"] == "succeeded":
        assert client in BY_ID[situation].may_succeed, f"{situation}/{client} got an answer"
        pytest.skip(f"{client}'s call got an answer in {situation}: nothing to diagnose")
    text = (fresh.out / entry["file"]).read_text()
    problems: list[str] = []
    if not checks.printed_nothing(text):
        problems += checks.offline(entry, text).problems
    problems += fresh.live[(situation, client)].problems
    assert not problems, f"{situation}/{client}: {'; '.join(problems)}\n{text}"
