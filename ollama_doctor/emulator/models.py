"""The model store: model names as Ollama normalises them, ``ModelSpec``, and the bodies that
describe a model (``/api/tags`` details, ``/api/show``).

Names follow ``types/model/name.go`` (default host ``registry.ollama.ai`` and namespace
``library`` dropped, ``:latest`` added, case-insensitive match; ``docs/ollama-wire.md`` §1.2).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .wire import rfc3339

MODEL_SIZE = 2019393189
EMBED_SIZE = 274302450
CAPABILITIES = (
    "completion",
    "tools",
    "insert",
    "vision",
    "embedding",
    "thinking",
    "image",
    "audio",
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*){0,2}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)(b?)$", re.IGNORECASE)
_PARAMS_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmbt]?)$", re.IGNORECASE)


def split_name(name: str) -> tuple[str, str] | None:
    """Split an Ollama model reference into (path, tag) in display form, or None if invalid.

    Mirrors ``types/model/name.go``: the default host ``registry.ollama.ai`` and namespace
    ``library`` are dropped, and a missing tag means ``latest`` (``docs/ollama-wire.md`` §1.2).
    """
    if not name or any(c.isspace() for c in name):
        return None
    path, tag = name, "latest"
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        path, tag = name[:colon], name[colon + 1 :]
    low = path.lower()
    if low.startswith("registry.ollama.ai/"):
        path = path[len("registry.ollama.ai/") :]
        low = path.lower()
    if low.startswith("library/"):
        path = path[len("library/") :]
    if not _NAME_RE.match(path) or not _TAG_RE.match(tag):
        return None
    return path, tag


def display_name(name: str) -> str | None:
    parts = split_name(name)
    return None if parts is None else f"{parts[0]}:{parts[1]}"


def _parse_size(text: str) -> int:
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"bad size {text!r}: use bytes or a number with K/M/G/T (e.g. 2.0G)")
    number, unit, binary, _b = m.groups()
    if binary and not unit:
        raise ValueError(f"bad size {text!r}: use bytes or a number with K/M/G/T (e.g. 2.0G)")
    power = " kmgt".index(unit.lower()) if unit else 0
    base = 1024 if binary else 1000
    return int(float(number) * base**power)


def _parse_params(value: str) -> str:
    if not _PARAMS_RE.match(value):
        raise ValueError(f"bad params {value!r}: expected e.g. 3.2B or 137M")
    return value.upper()


def _parse_caps(value: str) -> tuple[str, ...]:
    caps = tuple(c.strip().lower() for c in re.split(r"[,+]", value) if c.strip())
    bad = [c for c in caps if c not in CAPABILITIES]
    if bad or not caps:
        raise ValueError(
            f"bad capability {', '.join(bad) or value!r}: valid are {', '.join(CAPABILITIES)}"
        )
    return caps


def _parse_ctx(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"bad ctx {value!r}: expected a positive integer")
    return int(value)


def _parse_think(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"bad think {value!r}: expected a number of tokens")
    return int(value)


# A model spec's options: key -> (ModelSpec field, parser of the value).
_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "size": ("size", _parse_size),
    "family": ("family", str),
    "params": ("parameter_size", _parse_params),
    "quant": ("quantization_level", str),
    "caps": ("capabilities", _parse_caps),
    "ctx": ("context_length", _parse_ctx),
    "think": ("think_tokens", _parse_think),
}


def _parse_option(item: str) -> tuple[str, Any]:
    """One ``key=value`` of a model spec: the ModelSpec field and its value."""
    key, sep, value = item.partition("=")
    key, value = key.strip().lower(), value.strip()
    if not sep or not value:
        raise ValueError(f"bad model option {item!r}: expected key=value")
    if key not in _OPTIONS:
        raise ValueError(f"unknown model option {key!r}: valid are {', '.join(_OPTIONS)}")
    field, parse = _OPTIONS[key]
    return field, parse(value)


@dataclass
class ModelSpec:
    """One installed model, as ``/api/tags`` and ``/api/show`` describe it."""

    name: str  # display form, always with tag, e.g. "llama3.2:latest"
    size: int  # bytes
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    capabilities: tuple[str, ...] = ("completion", "tools")
    context_length: int = 4096
    # A reasoning model: how many tokens it thinks before answering (``think=N``; 0 = it does
    # not think). The thinking counts against ``num_predict``/``max_tokens`` as in Ollama, so a
    # budget no larger than this ends with empty content and ``done_reason: "length"``.
    think_tokens: int = 0

    @property
    def is_cloud(self) -> bool:
        """``…:cloud`` and ``…-cloud`` models are relayed to ollama.com by a real server."""
        return is_cloud_name(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.lower().encode()).hexdigest()

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        """Parse ``NAME[:TAG][;key=value…]`` (keys: size, family, params, quant, caps, ctx,
        think).

        ``size`` takes bytes or a number with K/M/G/T (decimal; ``KiB``/``MiB``/``GiB`` are
        binary). ``caps`` is separated by commas or ``+``. A missing tag means ``:latest``; names
        containing ``embed`` default to the ``embedding`` capability.
        """
        parts = spec.strip().split(";")
        raw_name = parts[0].strip()
        display = display_name(raw_name)
        if display is None:
            raise ValueError(f"bad model name {raw_name!r} in model spec {spec!r}")
        embed = "embed" in display.lower()
        kwargs: dict[str, Any] = {}
        for item in parts[1:]:
            item = item.strip()
            if item:
                field, value = _parse_option(item)
                kwargs[field] = value
        kwargs.setdefault("size", EMBED_SIZE if embed else MODEL_SIZE)
        if embed:
            kwargs.setdefault("capabilities", ("embedding",))
            kwargs.setdefault("parameter_size", "137M")
            kwargs.setdefault("quantization_level", "F16")
        if kwargs.get("think_tokens"):  # a model that thinks has the capability to
            caps = tuple(kwargs.get("capabilities", ("completion", "tools")))
            kwargs["capabilities"] = caps if "thinking" in caps else (*caps, "thinking")
        return cls(name=display, **kwargs)


def is_cloud_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(":cloud") or low.endswith("-cloud")


def parameter_count(parameter_size: str) -> int:
    m = _PARAMS_RE.match(parameter_size.strip())
    if not m:
        return 0
    scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def layer_count(spec: ModelSpec) -> int:
    params = parameter_count(spec.parameter_size)
    for limit, layers in ((2 * 10**9, 17), (4 * 10**9, 29), (9 * 10**9, 33), (15 * 10**9, 41)):
        if params < limit:
            return layers
    return 81


def default_models() -> list[ModelSpec]:
    return [ModelSpec.parse(f"llama3.2:latest;size={MODEL_SIZE}")]


LICENSE = (
    "EMULATED MODEL COMMUNITY LICENSE AGREEMENT\n\n"
    "This model is served by the ollama-doctor emulator. No weights are distributed.\n\n"
    + "\n\n".join(
        f"{n}. Section {n}. The emulated licensor grants you a non-exclusive, worldwide, "
        "non-transferable and royalty-free limited license under the emulated licensor's "
        "intellectual property embodied in these materials to use, reproduce, distribute, "
        "copy, create derivative works of, and make modifications to them."
        for n in range(1, 9)
    )
)


def full_name(spec: ModelSpec) -> str:
    """The fully qualified name Ollama prints in capability errors."""
    path = spec.name
    if path.count("/") == 0:
        return f"registry.ollama.ai/library/{path}"
    if path.count("/") == 1:
        return f"registry.ollama.ai/{path}"
    return path


def details(spec: ModelSpec) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": spec.family,
        "families": [spec.family],
        "parameter_size": spec.parameter_size,
        "quantization_level": spec.quantization_level,
    }


def tags_entry(spec: ModelSpec, modified: datetime) -> dict[str, Any]:
    """One ``/api/tags`` row (``api.ListModelResponse``)."""
    item: dict[str, Any] = {"name": spec.name, "model": spec.name}
    if spec.is_cloud:
        item["remote_model"] = spec.name.rsplit(":", 1)[0]
        item["remote_host"] = "https://ollama.com:443"
    item["modified_at"] = rfc3339(modified)
    item["size"] = 384 if spec.is_cloud else spec.size
    item["digest"] = spec.digest
    item["details"] = details(spec)
    item["capabilities"] = list(spec.capabilities)
    return item


def show_body(spec: ModelSpec, ctx_len: int, modified: datetime) -> dict[str, Any]:
    """``/api/show``'s answer (``api.ShowResponse``) for ``spec``."""
    arch = spec.family
    embedding = "embedding" in spec.capabilities
    info: dict[str, Any] = {
        "general.architecture": arch,
        "general.basename": spec.name.split(":")[0].split("/")[-1],
        "general.file_type": 15,
        "general.parameter_count": parameter_count(spec.parameter_size),
        "general.quantization_version": 2,
        f"{arch}.block_count": layer_count(spec),
        f"{arch}.context_length": ctx_len,
        f"{arch}.embedding_length": 768 if embedding else 3072,
    }
    if not embedding:
        info[f"{arch}.attention.head_count"] = 24
        info[f"{arch}.attention.head_count_kv"] = 8
    info = dict(sorted(info.items()))  # Go marshals maps with sorted keys
    template = (
        ""
        if embedding
        else (
            "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        )
    )
    parameters = (
        ""
        if embedding
        else (
            'stop                           "<|start_header_id|>"\n'
            'stop                           "<|end_header_id|>"\n'
            'stop                           "<|eot_id|>"'
        )
    )
    modelfile = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {spec.name}\n\n"
        f"FROM /root/.ollama/models/blobs/sha256-{spec.digest}\n"
    )
    if template:
        modelfile += f'TEMPLATE """{template}"""\n'
    out: dict[str, Any] = {
        "license": LICENSE,
        "modelfile": modelfile,
    }
    if parameters:
        out["parameters"] = parameters
    if template:
        out["template"] = template
    out["details"] = details(spec)
    out["model_info"] = info
    out["capabilities"] = list(spec.capabilities)
    out["modified_at"] = rfc3339(modified)
    return out

