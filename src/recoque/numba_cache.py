"""Where numba keeps compiled kernels: a folder we can write, chosen before numba is imported.

numba reads NUMBA_CACHE_DIR once, at import. With `cache=True` and no writable place (a read-only
HOME on a compute node, a read-only site-packages) decorating a kernel raises "cannot cache
function ... no locator available", so the whole benchmark would crash over a cache. Order tried:
an explicit NUMBA_CACHE_DIR that is writable, $XDG_CACHE_HOME/recoque/numba, ~/.cache/recoque/numba,
then <tempdir>/recoque-numba-<uid>. Only when none is writable is the variable left alone.
"""
from __future__ import annotations

import os
import tempfile


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def candidates() -> list[str]:
    out = []
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    if explicit:
        out.append(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        out.append(os.path.join(xdg, "recoque", "numba"))
    home = os.path.expanduser("~")
    if home and home != "~":
        out.append(os.path.join(home, ".cache", "recoque", "numba"))
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(os.path.join(tempfile.gettempdir(), f"recoque-numba-{uid}"))
    return out


def ensure() -> str | None:
    """Point NUMBA_CACHE_DIR at the first writable candidate; returns it (None: nothing writable)."""
    for path in candidates():
        if _writable(path):
            os.environ["NUMBA_CACHE_DIR"] = path
            return path
    return None
