"""What the peer modules share: importing an optional library (a ``PeerUnavailable`` with its install line when it
is missing), finding a kernel's function for a peer, wrapping each function once per process (a JIT's cache then
lives as long as the sweep), and inputs put on the peer's device with the transfer timed apart.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable

import numpy as np

from ...errors import PeerUnavailable
from ..impl import Impl
from ..kernel import Kernel, Lazy

#: The install line per peer (``pip install 'futhark-lab[peers]'`` brings the CPU ones; ``[gpu]`` the GPU ones).
HINTS = {
    "jax": "pip install jax  (on NVIDIA GPUs: pip install 'jax[cuda13]' or 'jax[cuda12]')",
    "torch-compile": "pip install torch  (torch.compile also needs a C compiler: apt-get install gcc; on GPUs "
                     "Triton, which CUDA wheels of torch bring)",
    "numba": "pip install numba",
    "numba-cuda": "pip install numba numba-cuda  (with the CUDA toolkit's NVVM, or 'numba-cuda[cu13]')",
    "cupy": "pip install cupy-cuda13x  (or cupy-cuda12x for CUDA 12 drivers)",
    "triton": "pip install triton  (CUDA wheels of torch bring it)",
    "pycuda": "pip install pycuda  (builds against the CUDA toolkit: needs nvcc and CUDA's headers)",
}


def require(module: str, peer: str) -> Any:
    """``import module``, or ``PeerUnavailable`` naming the install line (never any other exception)."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install failing at import
        raise PeerUnavailable(peer, f"{module} cannot be imported ({type(exc).__name__}: {exc})",
                              HINTS.get(peer, f"pip install {module}")) from None


def function(kernel: Kernel, peer: str, variant: str | None) -> Callable:
    """The kernel's function for ``peer`` (``Kernel.peers``), its ``variant`` or the default/first one."""
    fns = kernel.peers.get(peer)
    if fns is None:
        raise LookupError(f"kernel {kernel.name!r} has no {peer} version (Kernel(peers={{{peer!r}: ...}}))")
    if callable(fns):
        if variant not in (None, "default"):
            raise LookupError(f"kernel {kernel.name!r} has one {peer} version, not a variant {variant!r}")
        fn = fns
    elif variant is None:
        fn = fns.get("default") or next(iter(fns.values()))
    elif variant not in fns:
        raise LookupError(f"kernel {kernel.name!r} has no {peer} variant {variant!r}; it has {', '.join(fns)}")
    else:
        fn = fns[variant]
    if isinstance(fn, Lazy):
        try:
            fn = fn.resolve()
        except ImportError as exc:
            raise PeerUnavailable(peer, f"{fn!r} cannot be imported ({type(exc).__name__}: {exc})",
                                  HINTS.get(peer, "")) from None
    return fn


def variants(kernel: Kernel, peer: str) -> list[str | None]:
    """The variants a kernel has for ``peer`` (``[None]`` for a single function, ``[]`` for none)."""
    fns = kernel.peers.get(peer)
    if fns is None:
        return []
    if callable(fns):
        return [None]
    return [None if v == "default" else v for v in fns]


_WRAPPED: dict[tuple, Any] = {}


def wrapped(key: tuple, make: Callable[[], Any]) -> Any:
    """``make()`` once per process for ``key`` (a function and how it is compiled): the same ``jax.jit`` /
    ``numba.njit`` / ``torch.compile`` object serves every point, so only a new shape or dtype compiles."""
    try:
        return _WRAPPED[key]
    except KeyError:
        out = _WRAPPED[key] = make()
        return out


def put_inputs(inputs: tuple, put: Callable[[np.ndarray], Any], wait: Callable[[tuple], None]) -> tuple[float, tuple]:
    """Host arrays put on the peer's device (scalars stay as they are), waited for; (median of 3 transfers, the
    device inputs of the last), as the futhark implementation times its own."""
    times, out = [], ()
    for _ in range(3):
        t = time.perf_counter()
        out = tuple(put(v) if isinstance(v, np.ndarray) else v for v in inputs)
        wait(out)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def label(peer: str, device: str, variant: str | None, name: str | None) -> str:
    return name or f"{peer}-{device}" + (f"-{variant}" if variant else "")


def make_impl(kind: str, device: str, variant: str | None, name: str | None, **options) -> Impl:
    return Impl(label(kind, device, variant, name), kind, kind, device, True, options, variant=variant)


def waited_inside(how: str) -> Callable[[], None]:
    """The sample's synchronisation when the call itself waits for its result (``how`` is what the row's
    ``sync`` column says): no second wait per sample."""
    def none_extra() -> None:
        return None
    none_extra.__qualname__ = f"inside the call: {how}"
    return none_extra
