"""Model names as Ollama reads them: parsing, matching, and "did you mean" (pure functions).

Ollama's rules (``types/model/name.go``; docs/ollama-wire.md §1.2):

- a name is ``[host/][namespace/]model[:tag][@digest]``; a missing host is
  ``registry.ollama.ai``, a missing namespace ``library``, a missing tag ``latest``;
- each part compares case-insensitively (``Llama3.2`` *is* ``llama3.2:latest``);
- ``/api/tags`` shows the shortest form: the default host and namespace dropped, the tag kept;
  other hosts keep their namespace (``hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M``);
- a leading ``http://`` or ``https://`` is ignored;
- cloud models carry the tag ``cloud`` or a tag ending in ``-cloud`` (``gpt-oss:120b-cloud``).

``suggest`` ranks installed names by closeness to a requested one, tag-aware: the same model
under another tag (``llama3.2:1b`` → ``llama3.2:latest``) comes before a similar spelling
(``llama3.1`` → ``llama3.2:latest``). Against a store of 100,000 models it scores only the
few names whose cheap upper bound could still place (``_Bounds``, ``_Ranker``): same answer as
scoring them all, a fraction of a second instead of ~10 s.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
MAX_PART = 128  # Ollama's MaxNamePartLen
SUGGEST_CUTOFF = 0.6


@dataclass(frozen=True)
class ModelName:
    """A parsed name with Ollama's defaults filled in; parts keep their case."""

    raw: str
    host: str
    namespace: str
    model: str
    tag: str
    digest: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What Ollama compares: every part, case-folded."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    @property
    def repo_key(self) -> tuple[str, str, str]:
        """The name without its tag: two names with the same repo differ only by tag."""
        return self.key[:3]

    @property
    def shortest(self) -> str:
        """The form ``/api/tags`` and ``ollama list`` show (``DisplayShortest``)."""
        head = ""
        if self.host.lower() != DEFAULT_HOST:
            head = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            head = f"{self.namespace}/"
        return f"{head}{self.model}:{self.tag}"

    @property
    def is_cloud(self) -> bool:
        tag = self.tag.lower()
        return tag == "cloud" or tag.endswith("-cloud")


def parse(name: str) -> ModelName:
    """Split ``name`` into its parts and fill Ollama's defaults. Never raises."""
    return ModelName(name, *_split(name))


def _split(name: str) -> tuple[str, str, str, str, str]:
    """``parse`` without the dataclass: (host, namespace, model, tag, digest), defaults filled
    in (``suggest`` splits every installed name; a frozen dataclass costs more than the split)."""
    text = name
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    text, _, digest = text.partition("@")
    head, slash, last = text.rpartition("/")
    if ":" in last:
        model, _, tag = last.rpartition(":")
    else:
        model, tag = last, ""
    namespace, host = "", ""
    if slash:
        host_part, slash2, namespace = head.rpartition("/")
        if slash2:
            host = host_part
    return (host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG,
            digest)


def problems(name: str) -> list[str]:
    """Why Ollama would reject ``name`` as a model name (it answers 404 for those), if it would.

    Empty list when the name is well formed. Lenient on the host part (a port is allowed).
    """
    out: list[str] = []
    if not name:
        return ["the model name is empty"]
    if name != name.strip():
        out.append("it starts or ends with white space")
    elif any(ch.isspace() for ch in name):
        out.append("it contains white space")
    if out:
        return out
    parsed = parse(name)
    last = name.partition("@")[0].rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else DEFAULT_TAG
    checks = [("model", parsed.model, _PART), ("tag", tag, _PART)]
    if "/" in name.partition("@")[0]:
        checks.append(("namespace", parsed.namespace, _NAMESPACE))
        checks.append(("host", parsed.host, _HOST))
    for label, part, pattern in checks:
        if not part:
            out.append(f"the {label} part is empty")
        elif len(part) > MAX_PART:
            out.append(f"the {label} part is longer than {MAX_PART} characters")
        elif not pattern.match(part) or ".." in part:
            out.append(f"the {label} part {part!r} has characters Ollama does not allow")
    return out


def is_cloud(name: str) -> bool:
    """A cloud model name: tag ``cloud`` or a tag ending in ``-cloud``."""
    return parse(name.strip()).is_cloud


def same(a: str, b: str) -> bool:
    """Whether Ollama treats the two names as one model."""
    return parse(a).key == parse(b).key


def find(requested: str, installed: Iterable[str]) -> str | None:
    """The installed name Ollama would use for ``requested``, or ``None``."""
    want = parse(requested).key
    for name in installed:
        if parse(name).key == want:
            return name
    return None


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def score(requested: str, candidate: str) -> float:
    """Closeness of an installed name to a requested one: 0 … 2, higher is closer.

    - 2.0: the same model (the name matches);
    - 1.0 … 1.5: the same model under another tag (a tag that extends the requested one, such
      as ``1b-instruct-q4_K_M`` for ``1b``, scores highest; then closer spellings);
    - 0.95: the same model part under another namespace or host;
    - otherwise mostly the string similarity of the names without their tags, a little the
      similarity of the tags (a shared ``:latest`` must not make two names look alike).
    """
    req, cand = parse(requested), parse(candidate)
    if req.key == cand.key:
        return 2.0
    if req.repo_key == cand.repo_key:
        want, have = req.tag.lower(), cand.tag.lower()
        ratio = _ratio(want, have)
        if have.startswith(want) or want.startswith(have):  # 1b → 1b-instruct-q4_K_M
            return 1.4 + 0.1 * ratio
        return 1.0 + 0.35 * ratio
    if req.model.lower() == cand.model.lower():
        return 0.95
    repo = max(_ratio(req.model.lower(), cand.model.lower()),
               _ratio(req.shortest.rsplit(":", 1)[0].lower(),
                      cand.shortest.rsplit(":", 1)[0].lower()))
    return 0.9 * repo + 0.1 * _ratio(req.tag.lower(), cand.tag.lower())


class _Bounds:
    """Upper bounds of ``_ratio(a, b)`` for one ``a`` against many ``b``, cheapest first.

    ``SequenceMatcher.ratio()`` is ``2.0 * M / (len(a) + len(b))`` with ``M`` the characters
    of its matching blocks. Those blocks appear in order in both strings, so ``M`` is at most
    their longest common subsequence, which is at most the characters they share counted with
    multiplicity (``quick_ratio``), which is at most the characters of ``b`` that occur in
    ``a`` at all, and at most the shorter length. Each bound is computed with the same
    expression as ``ratio()`` from a count at least ``M``, so it is at least ``ratio()`` in
    floating point too (rounding is monotonic).
    """

    def __init__(self, a: str) -> None:
        self.text = a
        self.size = len(a)
        self.drop = str.maketrans("", "", "".join(dict.fromkeys(a)))
        self.counts = [(ch, a.count(ch)) for ch in dict.fromkeys(a)]
        masks: dict[str, int] = {}
        for i, ch in enumerate(a):
            masks[ch] = masks.get(ch, 0) | 1 << i
        self.masks = masks
        self.ones = (1 << self.size) - 1

    def by_alphabet(self, b: str) -> float:
        total = self.size + len(b)
        if not total:
            return 1.0
        shared = len(b) - len(b.translate(self.drop))
        return 2.0 * (shared if shared < self.size else self.size) / total

    def by_counts(self, b: str) -> float:
        total = self.size + len(b)
        if not total:
            return 1.0
        shared = 0
        for ch, count in self.counts:
            found = b.count(ch)
            shared += found if found < count else count
        return 2.0 * shared / total

    def by_lcs(self, b: str) -> float:
        """The longest common subsequence, bit-parallel (Hyyrö 2004): a bit per char of ``a``,
        one big-integer step per char of ``b``."""
        total = self.size + len(b)
        if not total:
            return 1.0
        row, masks = self.ones, self.masks
        for ch in b:
            hit = row & masks.get(ch, 0)
            row = (row + hit) | (row - hit)
        return 2.0 * (self.size - (row & self.ones).bit_count()) / total


class _Ranker:
    """Upper bounds of ``score(requested, name)``: the branches of ``score``, with ``_Bounds``
    in place of ``_ratio``. A bound is computed with the same expression as the score from
    parts at least as large, so it is at least the score."""

    def __init__(self, requested: str) -> None:
        req = parse(requested)
        self.host, self.ns, self.model, self.tag = req.key
        self.model_bounds = _Bounds(self.model)
        self.repo_bounds = _Bounds(req.shortest.rsplit(":", 1)[0].lower())
        self.same_repo = self.repo_bounds.text == self.model_bounds.text
        self.tag_bounds = _Bounds(self.tag)
        self.tags: dict[str, float] = {}  # few distinct tags in a store: each bound once

    def tag_part(self, tag: str) -> float:
        if tag not in self.tags:
            self.tags[tag] = self.tag_bounds.by_lcs(tag)
        return self.tags[tag]

    def first(self, name: str) -> tuple[float, bool]:
        """A cheap bound, and whether the string similarity branch of ``score`` applies
        (``tighter`` can then lower the bound; otherwise the next step is the score)."""
        host, ns, model, tag, _ = _split(name)
        c_model, c_tag = model.lower(), tag.lower()
        if c_model == self.model:
            if host.lower() != self.host or ns.lower() != self.ns:
                return 0.95, False
            if c_tag == self.tag:
                return 2.0, False
            ratio = self.tag_part(c_tag)
            if c_tag.startswith(self.tag) or self.tag.startswith(c_tag):
                return 1.4 + 0.1 * ratio, False
            return 1.0 + 0.35 * ratio, False
        c_repo = _repo(host, ns, model, c_model)
        tag_ratio = self.tags.get(c_tag)
        if tag_ratio is None:
            tag_ratio = self.tag_part(c_tag)
        if c_repo is c_model and self.same_repo:  # the common case, inlined: one bound
            return 0.9 * self.model_bounds.by_alphabet(c_model) + 0.1 * tag_ratio, True
        return self._combine(_Bounds.by_alphabet, c_model, c_repo, c_tag), True

    def tighter(self, name: str, step: int) -> float:
        """Step 1: shared characters; step 2: the longest common subsequence. (The parts are
        split again rather than kept: a store of 100,000 names would hold them all.)"""
        host, ns, model, tag, _ = _split(name)
        c_model = model.lower()
        return self._combine(_Bounds.by_counts if step == 1 else _Bounds.by_lcs, c_model,
                             _repo(host, ns, model, c_model), tag.lower())

    def _combine(self, bound: Callable[[_Bounds, str], float], c_model: str, c_repo: str,
                 c_tag: str) -> float:
        ratio = bound(self.model_bounds, c_model)
        if c_repo != c_model or not self.same_repo:
            ratio = max(ratio, bound(self.repo_bounds, c_repo))
        return 0.9 * ratio + 0.1 * self.tag_part(c_tag)


def _repo(host: str, ns: str, model: str, lower_model: str) -> str:
    """``shortest`` without its tag, lower-cased, as ``score`` compares it (a tag has no
    ``:``): the model alone for the default host and namespace."""
    if host != DEFAULT_HOST and host.lower() != DEFAULT_HOST:
        return f"{host}/{ns}/{model}".lower()
    if ns != DEFAULT_NAMESPACE and ns.lower() != DEFAULT_NAMESPACE:
        return f"{ns}/{model}".lower()
    return lower_model


def suggest(requested: str, installed: Sequence[str], limit: int = 3,
            cutoff: float = SUGGEST_CUTOFF) -> list[str]:
    """Installed names closest to ``requested``, best first; at most ``limit``.

    Ties keep the order of ``installed`` (``/api/tags`` lists the newest first).

    The result is that of scoring every name with ``score`` and sorting, but a store may hold
    100,000 models and ``score`` costs ~0.1 ms. So each name gets a cheap upper bound of its
    score (``_Ranker``) and waits in a heap ordered by (value, place); the top entry is
    replaced by a tighter bound, then by its score, until the top is a score: no name left can
    come before it, as every other value is at least that name's score.
    """
    keep = max(limit, 1)  # the first pick is kept before the limit is checked
    ranker = _Ranker(requested)
    # (-value, place, steps taken, name): step 3 is the score itself
    queue: list[tuple[float, int, int, str]] = []
    # a repeated name scores the same and comes later: only its first place counts, and the
    # order of first places is the order of the tie-break
    for place, name in enumerate(dict.fromkeys(installed)):
        bound, similarity = ranker.first(name)
        if bound >= cutoff:
            queue.append((-bound, place, 0 if similarity else 2, name))
    heapq.heapify(queue)
    out: list[str] = []
    while queue and len(out) < keep:
        _, place, step, name = queue[0]
        if step == 3:
            heapq.heappop(queue)
            out.append(name)
            continue
        value = score(requested, name) if step == 2 else ranker.tighter(name, step + 1)
        if value >= cutoff:
            heapq.heapreplace(queue, (-value, place, step + 1, name))
        else:
            heapq.heappop(queue)
    return out


def parse_cli_list(text: str) -> list[str]:
    """Names from ``ollama list`` output (the first column after the ``NAME`` header)."""
    names: list[str] = []
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].split() or lines[0].split()[0].upper() != "NAME":
        return names
    for line in lines[1:]:
        first = line.split()[0]
        if first not in names:
            names.append(first)
    return names
