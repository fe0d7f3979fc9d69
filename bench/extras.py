"""What `recoque bench` needs beyond a planning install, checked before anything heavy is imported.

`pip install recoque` plans and checks with numpy, typer and rich only; the benchmarks need the
`bench` extra (torch for the kernels and timing, numba for the CPU memory kernels).
"""
from __future__ import annotations

import importlib.util
import sys

from recoque.errors import BadInput

BENCH_MODULES = ("torch", "numba")


def missing(modules: tuple[str, ...] = BENCH_MODULES) -> list[str]:
    """The modules that cannot be imported here, found without importing them."""
    out = []
    for name in modules:
        if name in sys.modules:
            if sys.modules[name] is None:  # explicitly blocked
                out.append(name)
            continue
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except (ImportError, ValueError):
            out.append(name)
    return out


def require_bench_stack() -> None:
    gone = missing()
    if gone:
        raise BadInput(f"`recoque bench` needs {' and '.join(gone)}, which {'is' if len(gone) == 1 else 'are'} not "
                       "installed", "pip install 'recoque[bench]' (or run ./setup.sh; on a GPU node install the "
                       "ROCm or CUDA torch build first, see the README)")
