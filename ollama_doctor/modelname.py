"""Model names as Ollama reads them: parsing, matching, and "did you mean" (pure functions).

Ollama's rules (``types/model/name.go``; ollama-facts §1.2):

- a name is ``[host/][namespace/]model[:tag][@digest]``; a missing host is
  ``registry.ollama.ai``, a missing namespace ``library``, a missing tag ``latest``;
- each part compares case-insensitively (``Llama3.2`` *is* ``llama3.2:latest``);
- ``/api/tags`` shows the shortest form: the default host and namespace dropped, the tag kept;
  other hosts keep their namespace (``hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M``);
- a leading ``http://`` or ``https://`` is ignored;
- cloud models carry the tag ``cloud`` or a tag ending in ``-cloud`` (``gpt-oss:120b-cloud``).

``suggest`` ranks installed names by closeness to a requested one, tag-aware: the same model
under another tag (``llama3.2:1b`` → ``llama3.2:latest``) comes before a similar spelling
(``llama3.1`` → ``llama3.2:latest``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
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
    return ModelName(name, host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model,
                     tag or DEFAULT_TAG, digest)


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


def suggest(requested: str, installed: Sequence[str], limit: int = 3,
            cutoff: float = SUGGEST_CUTOFF) -> list[str]:
    """Installed names closest to ``requested``, best first; at most ``limit``.

    Ties keep the order of ``installed`` (``/api/tags`` lists the newest first).
    """
    scored = [(score(requested, name), -idx, name) for idx, name in enumerate(installed)]
    picked = sorted((s for s in scored if s[0] >= cutoff), reverse=True)
    out: list[str] = []
    for _, _, name in picked:
        if name not in out:
            out.append(name)
        if len(out) >= limit:
            break
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
