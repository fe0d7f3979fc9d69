"""Reading TOML/JSON inputs with one-line errors, and writing outputs atomically.

Reading refuses what could hang or mislead a reader: files above MAX_INPUT_BYTES, nesting deeper
than MAX_DEPTH, JSON's NaN/Infinity literals and duplicate keys. Writing goes to a temporary file in
the target's folder, fsync, chmod to the user's umask (mkstemp makes 0600), then rename: a reader
sees the old file or the new one, never half of one. Every OS failure becomes `WriteFailed`, one
line naming the path and the reason. `locked()` serialises writers of one file (flock on a lock
file beside it, removed on release), for read-modify-write such as `bench --append`.
"""
from __future__ import annotations

import copy
import errno
import fcntl
import functools
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from recoque.errors import BadInput, WriteFailed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MAX_INPUT_BYTES = 256 * 2**20  # a results file of a full GPU sweep is a few MiB
MAX_DEPTH = 64  # results and TOML inputs nest 4-5 levels

_FIXES = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some quota or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "no permission: write elsewhere or fix the folder's permissions",
    errno.EPERM: "no permission: write elsewhere or fix the folder's permissions",
    errno.ENOENT: "the folder does not exist: create it or write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder: write elsewhere",
    errno.EISDIR: "the path is a folder: give a file name",
}


def _failed(target: Path, exc: OSError) -> WriteFailed:
    why = exc.strerror or type(exc).__name__
    return WriteFailed(f"cannot write {target}: {why}", _FIXES.get(exc.errno or 0, "write elsewhere"))


def make_folder(path: str | os.PathLike) -> Path:
    """The folder (and its parents) made if missing; WriteFailed in one line if it cannot be."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _failed(folder, exc) from None
    return folder


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(target: Path) -> int:
    """An existing file keeps its mode; a new one gets 0666 less the umask, as open() would give."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """WriteFailed now, before anything is written, when `path` (a file, or with folder=True a folder
    that may not exist yet) cannot be written: a command with several outputs writes all or none.
    A symbolic link is checked where write_atomic writes: in the folder of the file it names."""
    target = Path(os.path.realpath(path)) if not folder and os.path.islink(path) else Path(path)
    if folder and target.exists() and not target.is_dir():
        raise WriteFailed(f"cannot write plots into {target}: it is a file, not a folder", "name a folder")
    if not folder and target.is_dir():
        raise WriteFailed(f"cannot write {target}: it is a folder", "give a file name")
    where = target if folder else target.parent
    while not where.exists() and where != where.parent:
        if not folder:
            raise WriteFailed(f"cannot write {target}: folder {where} does not exist", "create it or write elsewhere")
        where = where.parent
    if not where.is_dir():
        raise WriteFailed(f"cannot write {target}: {where} is not a folder", "write elsewhere")
    try:  # a real file, not os.access: root passes access() on read-only places such as /proc
        fd, probe = tempfile.mkstemp(prefix=".recoque-probe.", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _failed(target, exc) from None


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, chmod, then rename over the target. A
    symbolic link is written through: the file it names is replaced, the link stays a link."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    if target.is_dir():
        raise WriteFailed(f"cannot write {target}: it is a folder", "give a file name")
    folder = target.parent
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _failed(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), new_file_mode(target))
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _failed(target, exc) from None
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """The rename is durable once the folder's entry is on disk (ext4/xfs after a crash)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finite_or_null(data: Any) -> Any:
    """NaN and infinity become null: JSON has no such numbers, and a sensor that read nothing (a
    power counter, a clock) is unknown, not a number. Readers refuse NaN literals."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(v) for v in data]
    return data


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_atomic(path, json.dumps(finite_or_null(data), indent=1, sort_keys=False, allow_nan=False) + "\n")


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive flock on `.<name>.lock` beside `path`, removed on release. A waiter that
    wakes holding a lock file someone removed (or replaced) meanwhile opens it afresh: the lock only
    counts when the locked file is still the one at the path (the usual flock-and-recheck)."""
    target = Path(path)
    lock = target.parent / f".{target.name}.lock"
    fd = _lock_fd(lock, target)
    try:
        yield
    finally:
        try:
            os.unlink(lock)  # while still holding it: a waiter then sees a stale inode and retries
        except OSError:
            pass
        os.close(fd)  # closing releases the lock


def _lock_fd(lock: Path, target: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _failed(target, exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _read_text(p: Path, fix: str) -> str:
    if p.is_dir():
        raise BadInput(f"{p}: is a folder, not a file", "give the file's path")
    if p.exists() and not p.is_file():
        raise BadInput(f"{p}: not a regular file (a device, pipe or socket)", "give a file's path")
    if not p.is_file():
        raise BadInput(f"{p}: no such file", "check the path")
    try:
        size = p.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise BadInput(f"{p}: {size / 2**20:.0f} MiB is too large to be an input "
                           f"(limit {MAX_INPUT_BYTES // 2**20} MiB)", fix)
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{p}: not UTF-8 text", fix) from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read ({exc.strerror})", "check the path and its permissions") from None


def depth(data: Any) -> int:
    """Nesting depth of parsed JSON/TOML (iterative: a hostile file cannot exhaust the stack)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in node)
    return deepest


def _check_depth(p: Path, data: Any, fix: str) -> None:
    if depth(data) > MAX_DEPTH:
        raise BadInput(f"{p}: nested more than {MAX_DEPTH} levels deep", fix)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number recoque accepts")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice")
        out[k] = v
    return out


def read_json(path: str | os.PathLike, fix: str = "pass a file written by `recoque bench --out`") -> Any:
    p = Path(path)
    text = _read_text(p, fix)
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BadInput(f"{p}: nested more than {MAX_DEPTH} levels deep", fix) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{p}: not valid JSON ({exc})", fix) from None
    except ValueError as exc:
        raise BadInput(f"{p}: not valid JSON ({exc})", fix) from None
    _check_depth(p, data, fix)
    return data


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    fix = "fix the syntax at the position shown"
    text = _read_text(p, "pass a recoque TOML input; seeds/ shows the layout")
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise BadInput(f"{p}: nested more than {MAX_DEPTH} levels deep", "flatten the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{p}: not valid TOML ({exc})", fix) from None
    _check_depth(p, data, "flatten the file")
    return data


def read_seed_toml(name: str) -> dict[str, Any]:
    """Load one of the TOML files shipped in seeds/ (works for editable and wheel installs): parsed
    once per process, a fresh copy per call (callers may change what they get; a deep copy costs
    ~1/25 of a parse, and a check-set run asks for systems.toml once per case)."""
    return copy.deepcopy(_parsed_seed(name))


@functools.lru_cache(maxsize=None)
def _parsed_seed(name: str) -> dict[str, Any]:
    from importlib import resources

    text = resources.files("recoque.seeds").joinpath(name).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a broken seed file is our bug, say where
        raise BadInput(f"seeds/{name}: not valid TOML ({exc})", "fix the seed file") from None
