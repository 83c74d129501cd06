"""Which process holds a claim or reservation, and whether it is still alive.

The ledger is one local file, so every process writing it runs on this host: a holder
whose process is gone (killed, crashed) has left its claims behind, and they can be freed
at once instead of waiting for them to expire.
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def this_process() -> str:
    """`host:pid` of the running process."""
    return f"{HOST}:{os.getpid()}"


def is_gone(holder: str | None) -> bool:
    """True when `holder` is a process of this host that no longer runs."""
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
