"""One small app per client, written as a user writes it, making one ``chat`` call.

Errors are left uncaught: what the terminal shows (Python's traceback, node's uncaught
rejection, curl's stderr and body) is what the recorder stores. The base URL reaches the client
the way a real app passes it: ``OLLAMA_HOST`` for ollama-python and langchain-ollama (when not
the default), ``OPENAI_BASE_URL`` for the OpenAI clients, literally in the source otherwise. A
client timeout, when the situation needs one, is set in the source line that makes the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MODEL = "llama3.2"
PROMPT = "Why is the sky blue?"

# The client names of the manifest: ollama_doctor.clients family names (plus the async variant).
CLIENTS = ("ollama-python", "ollama-python-async", "langchain-ollama", "openai-python",
           "requests", "httpx", "ollama-js", "openai-node", "curl")
PYTHON_CLIENTS = CLIENTS[:6]
NODE_CLIENTS = ("ollama-js", "openai-node")

# Where each client's version comes from (the pip / npm package, or the curl binary).
PACKAGE = {"ollama-python": ("pip", "ollama"), "ollama-python-async": ("pip", "ollama"),
           "langchain-ollama": ("pip", "langchain-ollama"), "openai-python": ("pip", "openai"),
           "requests": ("pip", "requests"), "httpx": ("pip", "httpx"),
           "ollama-js": ("npm", "ollama"), "openai-node": ("npm", "openai"),
           "curl": ("bin", "curl")}


def family(client: str) -> str:
    """The ``ollama_doctor.clients`` family a manifest client belongs to."""
    return "ollama-python" if client == "ollama-python-async" else client


@dataclass(frozen=True)
class Call:
    """How one situation makes its call: what every app is given."""

    url: str | None  # base URL as the user writes it; None = the client's default
    openai_url: str | None  # OPENAI_BASE_URL (ends in /v1 unless the situation is about that)
    model: str = MODEL
    timeout: float | None = None  # seconds, set in the source line; None = client's default
    stream: bool = False


def _messages_py() -> str:
    return f'[{{"role": "user", "content": "{PROMPT}"}}]'


def _messages_js() -> str:
    return f"[{{ role: 'user', content: '{PROMPT}' }}]"


def _app_ollama_python(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    msgs = _messages_py()
    if call.stream:
        head = f"ollama.Client(timeout={t:g}).chat" if t else "ollama.chat"
        return "app.py", (
            "import ollama\n\n"
            f'for part in {head}(model="{m}", messages={msgs}, stream=True):\n'
            '    print(part["message"]["content"], end="", flush=True)\n'
            "print()\n")
    head = f"ollama.Client(timeout={t:g}).chat" if t else "ollama.chat"
    return "app.py", (
        "import ollama\n\n"
        f'response = {head}(model="{m}", messages={msgs})\n'
        'print(response["message"]["content"])\n')


def _app_ollama_python_async(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    msgs = _messages_py()
    ctor = f"AsyncClient(timeout={t:g})" if t else "AsyncClient()"
    if call.stream:
        body = (f'    async for part in await {ctor}.chat(model="{m}", messages={msgs}, '
                "stream=True):\n"
                '        print(part["message"]["content"], end="", flush=True)\n'
                "    print()\n")
    else:
        body = (f'    response = await {ctor}.chat(model="{m}", messages={msgs})\n'
                '    print(response["message"]["content"])\n')
    return "app.py", ("import asyncio\n\nfrom ollama import AsyncClient\n\n\n"
                      f"async def main():\n{body}\n\nasyncio.run(main())\n")


def _app_langchain_ollama(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    kw = f', client_kwargs={{"timeout": {t:g}}}' if t else ""
    text = f'from langchain_ollama import ChatOllama\n\nllm = ChatOllama(model="{m}"{kw})\n'
    if call.stream:
        text += (f'for chunk in llm.stream("{PROMPT}"):\n'
                 '    print(chunk.content, end="", flush=True)\nprint()\n')
    else:
        text += f'print(llm.invoke("{PROMPT}").content)\n'
    return "app.py", text


def _app_openai_python(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    msgs = _messages_py()
    kw = f", timeout={t:g}" if t else ""
    text = (f'from openai import OpenAI\n\nclient = OpenAI(api_key="ollama"{kw})\n')
    if call.stream:
        text += (f'stream = client.chat.completions.create(model="{m}", messages={msgs}, '
                 "stream=True)\nfor chunk in stream:\n"
                 '    print(chunk.choices[0].delta.content or "", end="", flush=True)\n'
                 "print()\n")
    else:
        text += (f'response = client.chat.completions.create(model="{m}", messages={msgs})\n'
                 "print(response.choices[0].message.content)\n")
    return "app.py", text


def _app_requests(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    msgs = _messages_py()
    url = f"{literal_url}/api/chat"
    kw = f", timeout={t:g}" if t else ""
    if call.stream:
        opener = (f'requests.post("{url}", json={{"model": "{m}", "messages": {msgs}}}, '
                  f"stream=True{kw})" if client == "requests" else
                  f'httpx.stream("POST", "{url}", json={{"model": "{m}", "messages": {msgs}}}'
                  f"{kw})")
        lines = "r.iter_lines()"
        return "app.py", (
            f"import json\n\nimport {client}\n\n"
            f"with {opener} as r:\n"
            "    r.raise_for_status()\n"
            f"    for line in {lines}:\n"
            "        if line:\n"
            '            print(json.loads(line)["message"]["content"], end="", flush=True)\n'
            "print()\n")
    return "app.py", (
        f"import {client}\n\n"
        f'r = {client}.post("{url}", json={{"model": "{m}", "messages": {msgs}, '
        f'"stream": False}}{kw})\n'
        "r.raise_for_status()\n"
        'print(r.json()["message"]["content"])\n')


def _app_ollama_js(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    js_msgs = _messages_js()
    opts = []
    if call.url is not None:
        opts.append(f"host: '{literal_url}'")
    if t:
        opts.append(f"fetch: (url, init) => fetch(url, {{ ...init, signal: "
                    f"AbortSignal.timeout({int(t * 1000)}) }})")
    if opts:
        head = ("import { Ollama } from 'ollama';\n\n"
                f"const ollama = new Ollama({{ {', '.join(opts)} }});\n")
    else:
        head = "import ollama from 'ollama';\n\n"
    if call.stream:
        return "app.mjs", head + (
            f"const stream = await ollama.chat({{ model: '{m}', messages: {js_msgs}, "
            "stream: true });\n"
            "for await (const part of stream) process.stdout.write(part.message.content);\n"
            "console.log();\n")
    return "app.mjs", head + (
        f"const response = await ollama.chat({{ model: '{m}', messages: {js_msgs} }});\n"
        "console.log(response.message.content);\n")


def _app_openai_node(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    js_msgs = _messages_js()
    kw = f", timeout: {int(t * 1000)}" if t else ""
    head = ("import OpenAI from 'openai';\n\n"
            f"const client = new OpenAI({{ apiKey: 'ollama'{kw} }});\n")
    if call.stream:
        return "app.mjs", head + (
            f"const stream = await client.chat.completions.create({{ model: '{m}', "
            f"messages: {js_msgs}, stream: true }});\n"
            "for await (const chunk of stream) "
            "process.stdout.write(chunk.choices[0]?.delta?.content || '');\n"
            "console.log();\n")
    return "app.mjs", head + (
        f"const response = await client.chat.completions.create({{ model: '{m}', "
        f"messages: {js_msgs} }});\n"
        "console.log(response.choices[0].message.content);\n")


def _app_curl(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    m, t = call.model, call.timeout
    data = (f'{{"model": "{m}", "messages": [{{"role": "user", "content": "{PROMPT}"}}]'
            + ("" if call.stream else ', "stream": false') + "}")
    flag = f" -m {t:g}" if t else ""
    return "app.sh", f"curl -sS --fail-with-body{flag} {literal_url}/api/chat -d '{data}'\n"


# client → the function that writes its app
_APPS: dict[str, Callable[[str, Call, str], tuple[str, str]]] = {
    "ollama-python": _app_ollama_python,
    "ollama-python-async": _app_ollama_python_async,
    "langchain-ollama": _app_langchain_ollama,
    "openai-python": _app_openai_python,
    "requests": _app_requests,
    "httpx": _app_requests,
    "ollama-js": _app_ollama_js,
    "openai-node": _app_openai_node,
    "curl": _app_curl,
}


def source(client: str, call: Call, literal_url: str) -> tuple[str, str]:
    """(file name, program text) of the app for ``client``."""
    return _APPS[client](client, call, literal_url)


def command(client: str, filename: str, python: str, node: str) -> list[str]:
    if filename.endswith(".py"):
        return [python, filename]
    if filename.endswith(".mjs"):
        return [node, filename]
    return ["sh", filename]
