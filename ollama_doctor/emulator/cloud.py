"""Cloud models (``…:cloud``, ``…-cloud``): what the ``cloud=…`` fault makes them answer.

A real server relays these to ollama.com (``server/cloud_proxy.go``
``cloudPassthroughMiddleware``, v0.33). That middleware runs *before* the OpenAI-compatibility
middleware on ``/v1/*`` routes (``server/routes.go`` ``GenerateRoutes``), so its own errors keep
Ollama's native ``{"error": "…"}`` shape there too, and the upstream's status and body are passed
through unchanged. Every error here is therefore raised with a verbatim ``body``.
"""

from __future__ import annotations

import base64
import socket
import time

from .faults import Faults
from .models import display_name, is_cloud_name
from .wire import HTTPError

# server/routes.go (v0.33) cloudErrRemote…; internal/cloud/policy.go DisabledError.
INFERENCE = "remote model is unavailable"
DETAILS = "remote model details are unavailable"
_DISABLED_PREFIX = "ollama cloud is disabled"
_QUOTA = (
    "you (user) have reached your session usage limit, upgrade for higher limits: "
    "https://ollama.com/upgrade"
)
_FAKE_KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatedOllamaDoctorKeyNotReal0000"


def _signin(_method: str, _path: str, _operation: str) -> HTTPError:
    # cloud_proxy.go writeCloudUnauthorized: 401 with the URL that registers this key.
    key = base64.urlsafe_b64encode(_FAKE_KEY).decode().rstrip("=")
    url = f"https://ollama.com/connect?name={socket.gethostname()}&key={key}"
    return HTTPError(401, "unauthorized", {"error": "unauthorized", "signin_url": url})


def _quota(_method: str, _path: str, _operation: str) -> HTTPError:
    # ollama.com's 429, passed through unchanged.
    return HTTPError(429, _QUOTA, {"error": _QUOTA})


def _disabled(_method: str, _path: str, operation: str) -> HTTPError:
    # cloud_proxy.go proxyCloudRequestWithPath: OLLAMA_NO_CLOUD=1 or disable_ollama_cloud.
    message = f"{_DISABLED_PREFIX}: {operation}"
    return HTTPError(403, message, {"error": message})


def _upstream(method: str, path: str, _operation: str) -> HTTPError:
    # cloud_proxy.go proxyCloudRequestWithPath: http.DefaultClient.Do failed -> 502 with Go's
    # *url.Error text (`Post "URL": dial tcp: …`); the signed URL carries ?ts=<unix>.
    url = f"https://ollama.com:443{path}?ts={int(time.time())}"
    verb = method[:1].upper() + method[1:].lower()
    message = f'{verb} "{url}": dial tcp: lookup ollama.com: no such host'
    return HTTPError(502, message, {"error": message})


_MODES = {"signin": _signin, "quota": _quota, "disabled": _disabled, "upstream": _upstream}


def cloud_check(
    name: str,
    f: Faults,
    *,
    method: str = "POST",
    path: str = "/api/chat",
    operation: str = INFERENCE,
) -> None:
    """Raise the cloud fault's answer when ``name`` is a cloud model and the fault is set."""
    if f.cloud is None or not is_cloud_name(display_name(name) or name):
        return
    raise _MODES[f.cloud](method, path, operation)
