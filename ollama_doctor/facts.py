"""Typed evidence one probe hands to the others: what a probe may read from another's result.

A probe's JSON ``facts`` stay a free-form dict for the report; the part other probes depend on
is a frozen dataclass here, set on the probe's ``Outcome`` (``evidence=``) and handed out by
type: ``ctx.facts(ReachabilityFacts)`` is ``None`` when reachability did not run. Field names
are the JSON ``facts`` keys they mirror, so ``schema.json`` describes both: its
``facts_<probe>`` definitions are generated from these classes (``python -m
ollama_doctor.facts`` prints them; ``tests/test_facts.py`` checks they are current).

Timing names (the README's glossary): a ``*_ms`` name says from when to when, once —
``connect_ms`` TCP handshake; ``tls_ms`` TLS handshake; ``headers_ms`` request sent → response
headers; ``first_chunk_ms`` request sent → first body chunk of a stream; ``total_ms`` request
sent → body complete; ``elapsed_ms`` whole operation as one span (a connect, a resolve).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ollama_doctor.result import Finding


@dataclass(frozen=True)
class ConnectFact:
    """One TCP connect the reachability probe made (``facts.connects[]``)."""

    address: str
    port: int
    ok: bool
    elapsed_ms: float
    error: str | None = None  # net.NetError kind: "refused", "connect-timeout", …

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ConnectFact:
        return cls(str(row.get("address", "")), int(row.get("port") or 0), bool(row.get("ok")),
                   float(row.get("elapsed_ms") or 0.0), row.get("error"))


@dataclass(frozen=True)
class ReachabilityFacts:
    """What the reachability probe established about the target."""

    PROBE: ClassVar[str] = "reachability"

    addresses: tuple[str, ...] | None = None  # what the target name resolved to, in order
    connects: tuple[ConnectFact, ...] | None = None  # None: it never got to connect
    looks_like_ollama: bool = True  # GET / said "Ollama is running" with no intermediary
    version: str | None = None  # /api/version
    root_error: str | None = field(default=None, metadata={"json": "root.error.kind"})

    @classmethod
    def from_result(cls, facts: Mapping[str, Any], findings: Sequence[Finding] = ()
                    ) -> ReachabilityFacts:
        """Read from the probe's JSON facts (its own ``run``, or a result built elsewhere)."""
        addresses = facts.get("addresses")
        root: Mapping[str, Any] = facts.get("root") or {}
        error: Mapping[str, Any] = root.get("error") or {}
        version = facts.get("version")
        connects = facts.get("connects")
        return cls(
            addresses=tuple(str(a) for a in addresses) if isinstance(addresses, list) else None,
            connects=(tuple(ConnectFact.from_dict(c) for c in connects if isinstance(c, dict))
                      if isinstance(connects, list) else None),
            looks_like_ollama=bool(facts.get("looks_like_ollama", True)),
            version=version if isinstance(version, str) else None,
            root_error=error.get("kind") if isinstance(error.get("kind"), str) else None)

    @property
    def working_address(self) -> str | None:
        """The first address a TCP connect succeeded to."""
        return next((c.address for c in self.connects or () if c.ok), None)

    @property
    def all_refused(self) -> bool:
        return bool(self.connects) and all(c.error == "refused" for c in self.connects or ())

    @property
    def any_refused(self) -> bool:
        return any(c.error == "refused" for c in self.connects or ())


@dataclass(frozen=True)
class ClientRoute:
    """How one client family reaches the target under this environment."""

    route: str  # "direct" or "proxy"
    proxy: str | None  # redacted proxy URL
    source: str | None  # the variable (or system setting) that decided it


@dataclass(frozen=True)
class ProxyFacts:
    """The proxy probe's per-family routes (``facts.clients``)."""

    PROBE: ClassVar[str] = "proxy"

    clients: Mapping[str, ClientRoute] = field(default_factory=dict)

    @classmethod
    def from_result(cls, facts: Mapping[str, Any], findings: Sequence[Finding] = ()
                    ) -> ProxyFacts:
        rows: Mapping[str, Mapping[str, Any]] = facts.get("clients") or {}
        return cls({family: ClientRoute(str(row.get("route")), row.get("proxy"),
                                        row.get("source"))
                    for family, row in rows.items()})

    def proxy_of(self, family: str) -> str | None:
        route = self.clients.get(family)
        return route.proxy if route is not None and route.proxy else None


@dataclass(frozen=True)
class ModelEntry:
    """One row of ``GET /api/tags`` the models probe kept (``facts.models[]``)."""

    name: str
    size: int | None = None


@dataclass(frozen=True)
class ModelsFacts:
    """What the models probe saw in the server's model list."""

    PROBE: ClassVar[str] = "models"

    models: tuple[ModelEntry, ...] = ()
    installed_as: str | None = field(default=None, metadata={"json": "model.installed_as"})

    @classmethod
    def from_result(cls, facts: Mapping[str, Any], findings: Sequence[Finding] = ()
                    ) -> ModelsFacts | None:
        """``None`` when the probe read no model list."""
        rows = facts.get("models")
        if not isinstance(rows, list):
            return None
        model: Mapping[str, Any] = facts.get("model") or {}
        installed = model.get("installed_as")
        return cls(models=tuple(ModelEntry(str(r["name"]), r.get("size")) for r in rows),
                   installed_as=installed if isinstance(installed, str) else None)

    def size_of(self, name: str) -> int | None:
        return next((m.size for m in self.models if m.name == name and m.size), None)


@dataclass(frozen=True)
class AuthFacts:
    """What the auth probe proved about access (the causes it found)."""

    PROBE: ClassVar[str] = "auth"

    origin_refused: bool = field(default=False, metadata={"json": None})

    @classmethod
    def from_result(cls, facts: Mapping[str, Any], findings: Sequence[Finding] = ()
                    ) -> AuthFacts:
        return cls(origin_refused=any(f.cause == "origin-forbidden" for f in findings))


EVIDENCE: tuple[type[Any], ...] = (ReachabilityFacts, ProxyFacts, ModelsFacts, AuthFacts)


# ---------------------------------------------------------------------------------------------
# the schema of each probe's facts, generated from the classes above


def _type_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in args]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is Mapping or origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    if dataclasses.is_dataclass(hint):
        return _object_schema(hint)
    raise TypeError(f"no schema for {hint!r}")


def _object_schema(cls: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        where = f.metadata.get("json", f.name)
        if where != f.name:  # derived from a nested key, or not written: not a key of its own
            continue
        props[f.name] = _type_schema(hints[f.name])
    return {"type": "object", "properties": props}


def schema_defs() -> dict[str, Any]:
    """``$defs`` entries ``facts_<probe>`` for ``schema.json`` (facts may hold more keys)."""
    out = {}
    for cls in EVIDENCE:
        body = _object_schema(cls)
        body["description"] = (f"The part of the {cls.PROBE} probe's facts other probes read "
                               f"(generated from ollama_doctor.facts.{cls.__name__}).")
        out[f"facts_{cls.PROBE}"] = body
    return out


if __name__ == "__main__":
    print(json.dumps(schema_defs(), indent=2))
