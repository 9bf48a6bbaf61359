"""Ollama-format log lines: slog text lines, gin ``[GIN]`` access lines, and the startup block.

The formats are Ollama's (``logutil/logutil.go`` slog TextHandler with source; gin v1.10
``defaultLogFormatter``), so the project's log reader can be tested on them
(``docs/ollama-wire.md`` §4).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from typing import TextIO

from .faults import Faults
from .wire import go_duration


def slog_value(value: object) -> str:
    text = str(value)
    if not text or any(c in ' ="' or not c.isprintable() for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class Log:
    """Appends Ollama-format lines to a file; thread-safe, flushed per line."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._fh: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        return self._fh is not None

    def raw(self, line: str) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()

    def slog(self, level: str, source: str, msg: str, **attrs: object) -> None:
        if self._fh is None:
            return
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        if stamp.endswith("+00:00"):
            stamp = stamp[:-6] + "Z"
        parts = [f"time={stamp}", f"level={level}", f"source={source}", f"msg={slog_value(msg)}"]
        parts += [f"{k}={slog_value(v)}" for k, v in attrs.items()]
        self.raw(" ".join(parts))

    def gin(self, status: int, latency_ns: int, client_ip: str, method: str, path: str) -> None:
        """gin v1.10 ``defaultLogFormatter`` without colours."""
        if self._fh is None:
            return
        if latency_ns > 60_000_000_000:
            latency_ns -= latency_ns % 1_000_000_000
        stamp = datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
        self.raw(
            f"[GIN] {stamp} | {status:3d} | {go_duration(latency_ns):>13} | {client_ip:>15} |"
            f" {method:<7}  {json.dumps(path, ensure_ascii=False)}"
        )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None




def log_startup(log: Log, f: Faults, bind: str, port: int, models: int) -> None:
    """The lines ``ollama serve`` prints before it accepts connections."""
    if not log.enabled:
        return
    host_for_env = f"[{bind}]" if ":" in bind else bind
    origins = " ".join(f.origins)
    env = {
        "CUDA_VISIBLE_DEVICES": "",
        "GPU_DEVICE_ORDINAL": "",
        "HIP_VISIBLE_DEVICES": "",
        "HSA_OVERRIDE_GFX_VERSION": "",
        "HTTPS_PROXY": "",
        "HTTP_PROXY": "",
        "NO_PROXY": "",
        "OLLAMA_CONTEXT_LENGTH": str(f.context or 0),
        "OLLAMA_DEBUG": "INFO",
        "OLLAMA_FLASH_ATTENTION": "false",
        "OLLAMA_GPU_OVERHEAD": "0",
        "OLLAMA_HOST": f"http://{host_for_env}:{port}",
        "OLLAMA_KEEP_ALIVE": "5m0s",
        "OLLAMA_KV_CACHE_TYPE": "",
        "OLLAMA_LLM_LIBRARY": "",
        "OLLAMA_LOAD_TIMEOUT": "5m0s",
        "OLLAMA_MAX_LOADED_MODELS": "0",
        "OLLAMA_MAX_QUEUE": str(f.queue),
        "OLLAMA_MODELS": os.path.expanduser("~/.ollama/models"),
        "OLLAMA_NOHISTORY": "false",
        "OLLAMA_NOPRUNE": "false",
        "OLLAMA_NO_CLOUD": "true" if f.cloud == "disabled" else "false",
        "OLLAMA_NUM_PARALLEL": "1",
        "OLLAMA_ORIGINS": f"[{origins}]",
        "OLLAMA_SCHED_SPREAD": "false",
        "ROCR_VISIBLE_DEVICES": "",
        "http_proxy": "",
        "https_proxy": "",
        "no_proxy": "",
    }
    env_text = "map[" + " ".join(f"{k}:{v}" for k, v in sorted(env.items())) + "]"
    log.slog("INFO", "routes.go:1951", "server config", env=env_text)
    log.slog("INFO", "images.go:522", "total blobs: " + str(2 * models))
    disabled = "true" if f.cloud == "disabled" else "false"
    log.slog("INFO", "routes.go:1992", f"Ollama cloud disabled: {disabled}")
    listen = (
        f"[::]:{port}"
        if bind in ("0.0.0.0", "::", "")
        else (f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}")
    )
    log.slog("INFO", "routes.go:2008", f"Listening on {listen} (version {f.version})")
    log.slog("INFO", "runner.go:67", "discovering available GPUs...")
    if f.offload == 0:
        log.slog(
            "INFO",
            "types.go:60",
            "inference compute",
            id="cpu",
            library="cpu",
            compute="",
            name="cpu",
            description="cpu",
            libdirs="ollama",
            driver="",
            pci_id="",
            type="",
            total="31.3 GiB",
            available="24.6 GiB",
        )
    else:
        log.slog(
            "INFO",
            "types.go:42",
            "inference compute",
            id="GPU-5f1c8a3e-emulated",
            library="CUDA",
            compute="8.9",
            name="CUDA0",
            description="NVIDIA GeForce RTX 4060",
            libdirs="ollama,cuda_v12",
            driver="12.8",
            pci_id="0000:01:00.0",
            type="discrete",
            total="8.0 GiB",
            available="7.6 GiB",
        )
        log.slog(
            "INFO",
            "routes.go:2049",
            "vram-based default context",
            total_vram="8.0 GiB",
            default_num_ctx=4096,
        )

# ---- connection handling ---------------------------------------------------------------
