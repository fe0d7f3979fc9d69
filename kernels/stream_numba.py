"""STREAM kernels for the CPU: numba `prange` loops, one pass over contiguous arrays, no temporaries.

`parallel=True` gives each thread (NUMBA_NUM_THREADS, default all cores) one contiguous block,
like BabelStream's `omp parallel for`. fastmath stays off so results are the exact roundings of
the written expression; only dot allows reassociation, which the vectoriser needs to split the
sum over SIMD lanes. `cache=True` keeps the compiled code between runs: in ~/.cache/recoque/numba
unless NUMBA_CACHE_DIR is set, because the package folder of a wheel install may be read-only.

On x86 the kernels that write an array use non-temporal (streaming) stores, as STREAM is usually
built (icc -qopt-streaming-stores): a normal store first reads the line it writes into
(write-allocate), so triad would move 4 arrays while BabelStream counts 3. Streaming stores make
the traffic what is counted (measured here: +25% on triad). Each thread ends its block with an
sfence, so its stores are visible before the parallel region returns. Elsewhere plain stores.
"""
from __future__ import annotations

import os
import platform


def _default_cache_dir() -> None:
    """Must run before numba is imported: numba reads its configuration at import time. A writable
    folder or the temp dir (recoque.numba_cache): a read-only HOME must not crash the kernels."""
    from recoque.numba_cache import ensure

    ensure()


_default_cache_dir()

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

if not numba.config.CACHE_DIR and os.environ.get("NUMBA_CACHE_DIR"):  # numba was imported before us
    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

STREAMING_STORES = platform.machine().lower() in ("x86_64", "amd64")
_JIT = dict(parallel=True, cache=True, nogil=True, fastmath=False)
_BLOCK_ALIGN = 1024  # elements: thread blocks start on whole cache lines (and pages, for 4-byte types)

if STREAMING_STORES:
    @intrinsic
    def _store(typingctx, arr, idx, val):
        """arr[idx] = val, marked non-temporal: the line is written without being read first."""
        sig = types.void(arr, idx, val)

        def codegen(context, builder, signature, args):
            aryty, idxty, valty = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            i = context.cast(builder, args[1], idxty, types.intp)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
            store = builder.store(context.cast(builder, args[2], valty, aryty.dtype), ptr)
            store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _fence(typingctx):
        """sfence: this thread's streaming stores become visible before anything it does next."""
        def codegen(context, builder, signature, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    def _vec4(kind):
        """One 4-lane step of a kernel on 4-byte elements: vector loads, the arithmetic, and ONE
        16-byte non-temporal store (movntps) at dst[i..i+3].

        x86 has no scalar non-temporal store for a float: the scalar loop issued a 4-byte store per
        element, kept the loop from vectorising, and fp32 reached half of fp64's bandwidth. The
        arithmetic is the written expression, lane by lane (b + s*c stays a multiply then an add:
        no fast-math, so no FMA contraction). i must be a multiple of 4 and dst 16-byte aligned.
        """
        @intrinsic
        def step(typingctx, dst, x, y, s, i):
            sig = types.void(dst, x, y, s, i)

            def codegen(context, builder, signature, args):
                dty = signature.args[0]
                vt = ir.VectorType(context.get_value_type(dty.dtype), 4)
                idx = context.cast(builder, args[4], signature.args[4], types.intp)

                def ptr(k):
                    ary = context.make_array(signature.args[k])(context, builder, args[k])
                    return builder.bitcast(cgutils.get_item_pointer(context, builder, signature.args[k], ary, [idx]),
                                           vt.as_pointer())

                def load(k):
                    return builder.load(ptr(k), align=4)

                def splat():
                    scalar = context.cast(builder, args[3], signature.args[3], dty.dtype)
                    v = ir.Constant(vt, ir.Undefined)
                    for lane in range(4):
                        v = builder.insert_element(v, scalar, ir.Constant(ir.IntType(32), lane))
                    return v

                if kind == "copy":
                    val = load(1)
                elif kind == "mul":
                    val = builder.fmul(splat(), load(1))
                elif kind == "add":
                    val = builder.fadd(load(1), load(2))
                else:  # triad: x + s * y
                    val = builder.fadd(load(1), builder.fmul(splat(), load(2)))
                store = builder.store(val, ptr(0), align=16)
                store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
                return context.get_dummy_value()

            return sig, codegen

        return step
else:
    @numba.njit(inline="always")
    def _store(arr, idx, val):
        arr[idx] = val

    def _vec4(kind):
        @numba.njit(inline="always")
        def step(dst, x, y, s, i):
            for j in range(i, i + 4):
                if kind == "copy":
                    dst[j] = x[j]
                elif kind == "mul":
                    dst[j] = s * x[j]
                elif kind == "add":
                    dst[j] = x[j] + y[j]
                else:
                    dst[j] = x[j] + s * y[j]

        return step

    @numba.njit(inline="always")
    def _fence():
        pass

_copy4, _mul4, _add4, _triad4 = (_vec4(k) for k in ("copy", "mul", "add", "triad"))


@numba.njit(cache=True)
def _block(n, nb):
    """Elements per block when n is split into nb blocks, each a multiple of _BLOCK_ALIGN."""
    per = -(-n // max(nb, 1))
    return max(1, -(-per // _BLOCK_ALIGN) * _BLOCK_ALIGN)


# nb (blocks, one per thread) is an argument: numba.get_num_threads() inside compiled code
# would stop the kernels from being cached.
@numba.njit(**_JIT)
def _copy(a, c, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        for i in range(k * per, min((k + 1) * per, a.shape[0])):
            _store(c, i, a[i])
        _fence()


@numba.njit(**_JIT)
def _mul(c, b, s, nb):
    per = _block(c.shape[0], nb)
    for k in numba.prange(nb):
        for i in range(k * per, min((k + 1) * per, c.shape[0])):
            _store(b, i, s * c[i])
        _fence()


@numba.njit(**_JIT)
def _add(a, b, c, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        for i in range(k * per, min((k + 1) * per, a.shape[0])):
            _store(c, i, a[i] + b[i])
        _fence()


@numba.njit(**_JIT)
def _triad(a, b, c, s, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        for i in range(k * per, min((k + 1) * per, a.shape[0])):
            _store(a, i, b[i] + s * c[i])
        _fence()


# 4-byte elements: 4 lanes per 16-byte streaming store; a block's last (n % 4) elements one by one.
@numba.njit(**_JIT)
def _copy_v(a, c, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        lo, hi = k * per, min((k + 1) * per, a.shape[0])
        end = lo + (hi - lo) // 4 * 4
        for i in range(lo, end, 4):
            _copy4(c, a, a, 0.0, i)
        for i in range(end, hi):
            _store(c, i, a[i])
        _fence()


@numba.njit(**_JIT)
def _mul_v(c, b, s, nb):
    per = _block(c.shape[0], nb)
    for k in numba.prange(nb):
        lo, hi = k * per, min((k + 1) * per, c.shape[0])
        end = lo + (hi - lo) // 4 * 4
        for i in range(lo, end, 4):
            _mul4(b, c, c, s, i)
        for i in range(end, hi):
            _store(b, i, s * c[i])
        _fence()


@numba.njit(**_JIT)
def _add_v(a, b, c, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        lo, hi = k * per, min((k + 1) * per, a.shape[0])
        end = lo + (hi - lo) // 4 * 4
        for i in range(lo, end, 4):
            _add4(c, a, b, 0.0, i)
        for i in range(end, hi):
            _store(c, i, a[i] + b[i])
        _fence()


@numba.njit(**_JIT)
def _triad_v(a, b, c, s, nb):
    per = _block(a.shape[0], nb)
    for k in numba.prange(nb):
        lo, hi = k * per, min((k + 1) * per, a.shape[0])
        end = lo + (hi - lo) // 4 * 4
        for i in range(lo, end, 4):
            _triad4(a, b, c, s, i)
        for i in range(end, hi):
            _store(a, i, b[i] + s * c[i])
        _fence()


def _vectorised(out: np.ndarray) -> bool:
    """4-byte elements with a 16-byte aligned output: the 4-lane streaming kernels apply."""
    return out.dtype.itemsize == 4 and out.ctypes.data % 16 == 0


def copy(a: np.ndarray, c: np.ndarray) -> None:  # c = a
    (_copy_v if _vectorised(c) else _copy)(a, c, numba.get_num_threads())


def mul(c: np.ndarray, b: np.ndarray, s: float) -> None:  # b = s * c
    (_mul_v if _vectorised(b) else _mul)(c, b, s, numba.get_num_threads())


def add(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:  # c = a + b
    (_add_v if _vectorised(c) else _add)(a, b, c, numba.get_num_threads())


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:  # a = b + s * c
    (_triad_v if _vectorised(a) else _triad)(a, b, c, s, numba.get_num_threads())


@numba.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def dot(a, b):  # sum(a * b); kept in float64 for fp32 too (bandwidth-bound either way)
    acc = 0.0
    for i in numba.prange(a.shape[0]):
        acc += a[i] * b[i]
    return acc


def run(op: str, a: np.ndarray | None, b: np.ndarray | None, c: np.ndarray | None,
        scalar: float) -> float | None:
    """Run one kernel on (a, b, c) in place (None for arrays it does not use); dot returns its value."""
    first = next(x for x in (a, b, c) if x is not None)
    s = first.dtype.type(scalar)  # in the arrays' dtype, so fp32 kernels stay fp32
    if op == "copy":
        copy(a, c)
    elif op == "mul":
        mul(c, b, s)
    elif op == "add":
        add(a, b, c)
    elif op == "triad":
        triad(a, b, c, s)
    elif op == "dot":
        return float(dot(a, b))
    else:
        raise ValueError(f"unknown STREAM kernel {op!r}")
    return None


def threads() -> int:
    """Threads the prange loops run on (for the record: a 1 here means no parallelism)."""
    return int(numba.get_num_threads())


def threading_layer() -> str:
    """The parallel backend numba chose (valid after the first parallel call)."""
    try:
        return str(numba.threading_layer())
    except ValueError:  # nothing parallel has run yet
        return "unset"
