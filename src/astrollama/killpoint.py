"""Injected crash points for the resumability tests.

``ASTROLLAMA_KILLPOINT="<tag>:<n>"`` makes the process SIGKILL itself the ``n``-th time
:func:`hit` is called with ``tag`` (a real ``kill -9``: no cleanup handlers run).
``ASTROLLAMA_HANGPOINT="<tag>:<text>"`` makes it hang for good (as on a hung network file system)
when :func:`hit` is called with ``tag`` and a ``key`` containing ``text``. Unset, ``hit``
costs one dict lookup. Stages call it between the steps whose interleaving matters (between a
paper's two output files, after a shard, before the final rename).
"""

from __future__ import annotations

import os
import signal
import time

_counts: dict[str, int] = {}


def hit(tag: str, key: str = "") -> None:
    hang = os.environ.get("ASTROLLAMA_HANGPOINT")
    if hang:
        want, _, text = hang.partition(":")
        if want == tag and text and text in key:
            while True:  # until the caller's timeout kills this process
                time.sleep(3600)
    spec = os.environ.get("ASTROLLAMA_KILLPOINT")
    if not spec:
        return
    want, _, n = spec.rpartition(":")
    if want != tag:
        return
    _counts[tag] = _counts.get(tag, 0) + 1
    if _counts[tag] >= int(n):
        os.kill(os.getpid(), signal.SIGKILL)
