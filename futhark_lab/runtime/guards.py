"""Checks that keep user input from crashing the process or giving silently wrong results, kept out of the
binding's hot path: each check here runs only where its condition can arise (array results, unique parameters,
``restore``, context options, ``fork``).

Everything raises FutharkError/ValueError/TypeError naming the entry point, the parameter and the fix.
"""

from __future__ import annotations

import atexit
import operator
import os
import struct
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ..errors import FutharkError

_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- results

def check_shape(what: str, shape: tuple[int, ...], itemsize: int) -> None:
    """An array result whose shape cannot be right (a negative dimension, or more bytes than int64 counts) came
    from sizes futhark does not check (``replicate n`` with n < 0, ``unflatten`` with a wrapping product)."""
    total = itemsize
    for d in shape:
        if d < 0:
            raise FutharkError(f"{what} produced an array of impossible shape {shape} (a negative size): an array "
                               "size passed to it is negative; pass sizes >= 0")
        total *= d
    if total > _INT64_MAX:
        raise FutharkError(f"{what} produced an array of shape {shape}, {total} bytes, more than memory can "
                           "address (its size product wrapped around): pass smaller sizes")


# --------------------------------------------------------------------------- uniqueness

def check_unique_aliasing(entry: str, names: list[str], unique: list[int], args: tuple) -> None:
    """An argument passed to a unique (consuming) parameter may not also be passed to another parameter of the
    same call: futhark would update it in place while the other parameter still reads it."""
    for i in unique:
        a = args[i]
        if isinstance(a, (int, float, bool, complex, str)) or a is None:
            continue
        for j, b in enumerate(args):
            if j != i and b is a:
                raise ValueError(f"{entry}(): the same value is passed to the unique (consumed) parameter "
                                 f"{names[i]!r} and to {names[j]!r}; pass a copy to one of them")


# --------------------------------------------------------------------------- context options

def check_num_threads(n: Any) -> int:
    """futhark's multicore scheduler exits the process when it cannot start a thread: refuse what the OS will not
    give instead."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    limit = _thread_limit()
    if not 1 <= n <= limit:
        raise ValueError(f"num_threads={n} is outside 1..{limit} (the most threads this process may start; "
                         f"this machine has {os.cpu_count()} cores)")
    return n


def check_tuning(tuning: Any) -> dict[str, int]:
    """Tuning parameters as futhark takes them: names are strings, values integers 0..2**63-1 (futhark's setter
    takes a size_t and stores an int64_t; Python would raise a raw OverflowError, or a bool or float would pass
    as 1 or be truncated)."""
    if tuning is None:
        return {}
    if not isinstance(tuning, Mapping):
        try:
            tuning = dict(tuning)
        except (TypeError, ValueError):
            raise TypeError(f"tuning must be a dict of parameter name -> integer, got {type(tuning).__name__}") \
                from None
    out = {}
    for name, value in tuning.items():
        if not isinstance(name, str):
            raise TypeError(f"tuning parameter names are strings (see module.tuning_parameters()), got {name!r}")
        if "\0" in name or not name.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
            raise ValueError(f"unknown tuning parameter {name!r}: names are printable text (see "
                             "module.tuning_parameters())")
        allowed = f"tuning values are integers from 0 to {_INT64_MAX}"
        if isinstance(value, (bool, np_bool_types())) or not hasattr(type(value), "__index__"):
            raise TypeError(f"tuning parameter {name!r} = {value!r} ({type(value).__name__}): {allowed}")
        v = operator.index(value)
        if not 0 <= v <= _INT64_MAX:
            raise ValueError(f"tuning parameter {name!r} = {v}: {allowed}")
        out[name] = v
    return out


def np_bool_types() -> tuple[type, ...]:
    np = sys.modules.get("numpy")
    return (np.bool_,) if np is not None else ()


def check_cuda_device(device: Any) -> None:
    """futhark's cuda runtime silently takes the best device when ``device`` matches none: refuse that instead.

    futhark's syntax: ``"NAME"`` (first device whose name contains it), ``"NAME#k"`` / ``"#k"`` (the k-th match).
    Without a driver nothing is checked here (context creation will say what is missing).
    """
    from . import cudadrv

    text = str(device)
    name, _, num = text.partition("#")
    try:
        index = int(num) if num else 0
    except ValueError:
        raise ValueError(f"device={text!r}: after '#' comes a device number, e.g. device='#0'") from None
    try:
        names = cudadrv.device_names()
    except cudadrv.CudaUnavailable:
        return
    matches = [n for n in names if name in n]
    if index >= len(matches) or index < 0:
        listing = ", ".join(f"#{i} {n!r}" for i, n in enumerate(names)) or "none"
        raise ValueError(f"device={text!r} matches no CUDA device (futhark would silently use another); this "
                         f"machine has: {listing}. Pass device='#k' or a substring of a device name.")


def _thread_limit() -> int:
    limit = 4096
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limit = min(limit, soft)
    except (ImportError, OSError, ValueError):
        pass
    try:
        with open("/proc/sys/kernel/threads-max") as f:
            limit = min(limit, int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return max(1, limit)


# --------------------------------------------------------------------------- store / restore

_BINARY_TYPES = {b"  i8": 1, b" i16": 2, b" i32": 4, b" i64": 8, b"  u8": 1, b" u16": 2, b" u32": 4, b" u64": 8,
                 b" f16": 2, b" f32": 4, b" f64": 8, b"bool": 1}


def check_stored(type_name: str, data: Any) -> bytes:
    """``restore()`` input: bytes made by ``store()``, i.e. a sequence of futhark binary values, each complete, with
    sizes >= 0 and exactly filling the input.  futhark's restore trusts its input (a byte short reads past the
    end; a patched shape makes the runtime exit)."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"restore({type_name!r}, data): data must be bytes from .store(), got {type(data).__name__}")
    pos, n = 0, len(data)

    def bad(why: str) -> ValueError:
        return ValueError(f"restore({type_name!r}, data): not a value stored by this program's .store() "
                          f"({why} at byte {pos} of {n}); pass the bytes .store() returned, unmodified")

    if n == 0:
        raise bad("empty input")
    while pos < n:
        if n - pos < 7 or data[pos] != ord("b") or data[pos + 1] != 2:
            raise bad("no futhark binary value header")
        rank, tname = data[pos + 2], data[pos + 3:pos + 7]
        if tname not in _BINARY_TYPES:
            raise bad(f"unknown element type {tname!r}")
        pos += 7
        if n - pos < 8 * rank:
            raise bad("truncated shape")
        shape = struct.unpack_from(f"<{rank}q", data, pos)
        if any(d < 0 for d in shape):
            raise bad(f"negative size in shape {shape}")
        pos += 8 * rank
        count = _BINARY_TYPES[tname]
        for d in shape:
            count *= d
        if count > n - pos:
            raise bad(f"truncated data (shape {shape} needs {count} bytes, {n - pos} left)")
        pos += count
    return data


# --------------------------------------------------------------------------- fork

_live: "weakref.WeakSet[Any]" = weakref.WeakSet()
_live_lock = threading.Lock()


def track_context(ctx: Any) -> None:
    """Contexts to disown in a forked child: their threads and driver state do not exist there (a call hangs)."""
    with _live_lock:
        _live.add(ctx)


#: backends whose context is plain host memory without threads: they keep working in a forked child
_FORK_SAFE = ("c", "python")


def _after_fork_in_child() -> None:
    global _live_lock
    _live_lock = threading.Lock()
    for ctx in list(_live):
        if getattr(ctx, "backend", None) in _FORK_SAFE:
            continue
        try:
            ctx._forked()
        except Exception:  # noqa: BLE001 - never fail the fork
            pass


def _close_all_at_exit() -> None:
    """Free live contexts at interpreter exit under their locks, so a daemon thread still inside a call finishes
    it first (its next call then raises); a call that does not finish in time leaves its context unfreed."""
    for ctx in list(_live):
        lock = getattr(ctx, "_lock", None)
        if lock is None or not lock.acquire(timeout=10):
            continue
        try:
            ctx.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
        finally:
            lock.release()


atexit.register(_close_all_at_exit)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


FORKED = ("this module was created in the parent of a forked process; its runtime threads and device state "
          "do not exist in this child. Compile (or load) the program again in the child process, or use the "
          "'spawn' start method of multiprocessing")


_UNSET = object()


def bind_keywords(entry: str, names: list[str], args: tuple, kwargs: dict) -> tuple:
    """Entry-point arguments given by their Futhark names (``f(xs=a)``) as one positional tuple, with errors that
    name the entry point, worded as Python's own (which the binding's fast path raises for the same mistakes)."""
    bound: list = list(args) + [_UNSET] * (len(names) - len(args))
    for k, v in kwargs.items():
        if k not in names:
            raise TypeError(f"{entry}() got an unexpected keyword argument {k!r} (its parameters: "
                            f"{', '.join(names) or 'none'})")
        i = names.index(k)
        if i < len(args):
            raise TypeError(f"{entry}() got multiple values for argument {k!r}")
        bound[i] = v
    missing = [n for n, v in zip(names, bound) if v is _UNSET]
    if missing:
        raise TypeError(f"{entry}() is missing parameter(s) {', '.join(map(repr, missing))}")
    return tuple(bound)
