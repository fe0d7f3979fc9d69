"""A dependent integer chain whose speed is the core clock: 4 one-cycle ops per iteration.

Each iteration is shift -> add -> shift -> xor on the same register, every op waiting for the
previous one, and integer shift/add/xor have a latency of one cycle on every x86-64 and Arm core
we know of; LLVM cannot fold the chain into a closed form. So cycles = 4 * iterations, and the
clock is 4 * iterations / seconds. Used when the OS does not expose the boost clock (VMs).
"""
from __future__ import annotations

from recoque.numba_cache import ensure as _ensure_cache  # noqa: E402 - a writable cache before numba loads

_ensure_cache()

import numba  # noqa: E402

CYCLES_PER_ITERATION = 4


@numba.njit(cache=True)
def dependent_chain(iterations: int, seed: int) -> int:
    x = seed
    for _ in range(iterations):
        x = x + (x >> 1)
        x = x ^ (x >> 3)
    return x
