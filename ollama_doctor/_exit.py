"""Leaving the process without waiting for stuck threads. Standard library only: ``main``
imports it on every command, ``--help`` included, so it must not pull in the runner's imports
(net, ssl, context)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Exit with ``code`` without waiting for threads a cut probe left behind.

    Probe threads are daemons, but a probe's own helpers (a ``ThreadPoolExecutor``'s workers)
    are not, and interpreter shutdown joins those: when any is still alive, flush and leave
    with ``os._exit``."""
    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and t.is_alive()
             and (not t.daemon or t.name.startswith("od-probe-"))]
    if stuck:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)
