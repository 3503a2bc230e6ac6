"""``Kernel``: what to compute (a Futhark program and entry point, NumPy reference, PyTorch equivalent), how to make
seeded inputs for a size, and how many bytes and flops one call moves and does.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
          "u8": np.uint8}
#: The peer libraries a Kernel may name in ``peers`` (each one a module under ``sweep/impls/``).
PEERS = ("jax", "torch-compile", "numba", "numba-cuda", "cupy", "triton", "pycuda")
#: Relative tolerance by dtype for floating-point answers that may be summed in another order.
DEFAULT_RTOL = {"f16": 1e-2, "f32": 1e-4, "f64": 1e-10}


class Lazy:
    """A peer function named by module and attribute, imported when a sweep first needs it (a ``@triton.jit`` or
    ``@cuda.jit`` kernel's module imports its library at import time): ``Kernel(peers={"triton":
    Lazy("mykernels", "sum_squares")})``.  The sweep resolves it once, so calls go straight to the function."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def resolve(self) -> Callable[..., Any]:
        import importlib
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args: Any) -> Any:
        return self.resolve()(*args)

    def __repr__(self) -> str:
        return f"Lazy({self.module!r}, {self.name!r})"


# --------------------------------------------------------------------------- descriptions

@dataclasses.dataclass
class Kernel:
    """One computation, described once for every implementation.

    ``source``: a ``.fut`` path, Futhark source text, a module from ``%%futhark``/``futhark_lab.compile``, or one of
    its entry points (``mine.dot``); the sweep compiles that program for each Futhark backend it is asked for.
    ``entry``: the entry point (may contain ``{dtype}``, e.g. ``"saxpy_{dtype}"``); optional when ``source`` is an
    entry point or the program has exactly one.
    ``make_inputs(n, dtype, rng)``: the arguments of one call at size ``n`` (a tuple, or one array), from the seeded
    ``numpy.random.Generator`` ``rng``.  Inputs are made once per point and kept on the device, as for the suite.
    ``numpy``: the reference; optional, but without it answers are not checked (``correct`` stays empty, and the
    sweep says so).  ``torch``: a function of tensors, or ``{label: function}``.
    ``bytes_moved(n, dtype)``: bytes one call must read and write at minimum; default: what the inputs and the
    output occupy.  ``flops(n, dtype)``: optional (no GFLOP/s or roofline point without it).
    ``large_sizes``: sizes beyond ``sizes`` where a GPU shows its bandwidth; a sweep's default sizes on a GPU add
    those that fit its memory (``sweep.devicesizes``).
    ``dtypes``: default: the element type of the entry point's first array parameter when it can be read, else f64.
    ``peers``: the kernel in other libraries, one line each, ``{peer: function}`` or ``{peer: {variant: function}}``
    (``PEERS`` names them): ``"jax"`` a function of jax arrays (jitted by the sweep unless already jitted),
    ``"numba"`` a function ``numba.njit`` compiles (or a dispatcher), ``"cupy"`` a function of CuPy arrays (plain
    CuPy or a user kernel), ``"triton"`` a launcher of a ``@triton.jit`` kernel taking and returning CUDA tensors,
    ``"numba-cuda"`` a launcher taking and returning numba device arrays, ``"pycuda"`` a launcher taking and
    returning ``pycuda.gpuarray`` arrays, ``"torch-compile"`` a function to compile instead of ``torch``'s.
    """

    name: str
    source: Any
    entry: str | None = None
    make_inputs: Callable[[int, str, np.random.Generator], Any] | None = None
    numpy: Callable[..., Any] | None = None                 # the reference implementation
    bytes_moved: Callable[[int, str], int] | None = None    # default: inputs + outputs
    flops: Callable[[int, str], int] | None = None
    torch: dict[str, Callable[..., Any]] | Callable[..., Any] = dataclasses.field(default_factory=dict)
    sizes: Sequence[int] = (10**3, 10**4, 10**5, 10**6, 10**7)
    dtypes: Sequence[str] | None = None
    rtol: dict[str, float] = dataclasses.field(default_factory=dict)
    check: Callable[[Any, Any, str], tuple[bool, float]] | None = None  # custom correctness check
    description: str = ""
    size_label: str = "elements"
    large_sizes: Sequence[int] = ()   # added on a GPU, where memory allows (``sweep.devicesizes``)
    peers: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        prog = _program_of(self.source)
        if prog.entry is not None and self.entry is None:
            self.entry = prog.entry
        if self.entry is None:
            names = prog.entry_names()
            if len(names) != 1:
                raise ValueError(f"Kernel {self.name!r}: say which entry point to sweep (entry=...); the program "
                                 f"has {', '.join(names) if names else 'none that could be read'}")
            self.entry = names[0]
        if self.make_inputs is None:
            raise TypeError(f"Kernel {self.name!r} needs make_inputs(n, dtype, rng): the arguments of one call of "
                            f"{self.entry!r} at size n, e.g. make_inputs=lambda n, dtype, rng: (rng.random(n),)")
        _check_arity(self.name, "make_inputs", self.make_inputs, 3, "(n, dtype, rng)")
        for what, fn in (("bytes_moved", self.bytes_moved), ("flops", self.flops)):
            if fn is not None:
                _check_arity(self.name, what, fn, 2, "(n, dtype)")
        if callable(self.torch):
            self.torch = {"default": self.torch}
        unknown = sorted(set(self.peers) - set(PEERS))
        if unknown:
            raise ValueError(f"Kernel {self.name!r}: peers has {', '.join(map(repr, unknown))}; the peers are "
                             f"{', '.join(PEERS)}")
        for peer, fn in self.peers.items():
            if not (callable(fn) or (isinstance(fn, dict) and fn and all(callable(f) for f in fn.values()))):
                raise TypeError(f"Kernel {self.name!r}: peers[{peer!r}] must be a function or a dict "
                                "{variant: function}")
        if self.dtypes is None:
            self.dtypes = (prog.dtype(self.entry) or "f64",)
        self._program = prog

    def entry_for(self, dtype: str) -> str:
        return self.entry.format(dtype=dtype)

    def inputs(self, n: int, dtype: str, rng: np.random.Generator) -> tuple:
        """``make_inputs`` as a tuple (one array is one argument)."""
        try:
            made = self.make_inputs(n, dtype, rng)
        except Exception as exc:
            raise _with_context(exc, f"kernel {self.name!r}: make_inputs({n}, {dtype!r}, rng) failed") from exc
        return made if isinstance(made, tuple) else (made,)


@dataclasses.dataclass(frozen=True)
class _FutharkProgram:
    """What a Kernel's source compiles: a path or text, where its imports resolve, the name shown in messages."""

    source: str | Path
    base_dir: str | None
    shown: str | None
    entry: str | None = None        # given by passing an entry point as the source
    module: Any = None              # the module it came from (only read, for entry names and types)

    @property
    def key(self) -> str:
        if isinstance(self.source, Path):
            return str(self.source.resolve())
        import hashlib
        return hashlib.sha256(f"{self.base_dir}\0{self.source}".encode()).hexdigest()

    def entry_names(self) -> list[str]:
        if self.module is not None:
            return list(self.module.entry_points)
        import re
        text = self.source.read_text() if isinstance(self.source, Path) else self.source
        return sorted(set(re.findall(r"^\s*entry\s+([A-Za-z_][A-Za-z0-9_']*)", text, re.M)))

    def dtype(self, entry: str) -> str | None:
        """The element type of the entry point's first array parameter, from the module's signature."""
        fn = self.module.entry_points.get(entry) if self.module is not None else None
        if fn is None:
            return None
        types = [p.type for p in fn.entry.inputs] if hasattr(fn, "entry") else list(getattr(fn, "_in_types", []))
        for t in types:
            elem = t.lstrip("*[]0123456789")
            if t.lstrip("*").startswith("[") and elem in DTYPES:
                return elem
        return None


def _program_of(source: Any) -> _FutharkProgram:
    module, entry = None, None
    if hasattr(source, "_module") and hasattr(source, "__name__"):  # an entry point of a compiled module
        module, entry = source._module, source.__name__
    elif hasattr(source, "entry_points") and hasattr(source, "build"):
        module = source
    if module is not None:
        prog = getattr(module, "_lab_program", None)
        if prog is None:
            raise TypeError("this module was not made by futhark_lab.compile or %%futhark, so its source is unknown;"
                            " pass the Futhark source text or the .fut path instead")
        src = prog.source
        src = Path(src) if isinstance(src, os.PathLike) or _looks_like_path(src) else src
        return _FutharkProgram(src, prog.base_dir, prog.name, entry, module)
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no Futhark source file at {path}")
        return _FutharkProgram(path, None, None)
    if isinstance(source, str):
        return _FutharkProgram(source, os.getcwd(), None)
    raise TypeError(f"Kernel source must be a .fut path, Futhark source text, or a module (or entry point) from "
                    f"%%futhark / futhark_lab.compile, not {type(source).__name__}")


def _looks_like_path(s: Any) -> bool:
    return isinstance(s, str) and "\n" not in s and s.endswith(".fut") and len(s) < 4096


def _check_arity(kernel: str, what: str, fn: Callable, n: int, params: str) -> None:
    """A function that cannot take ``n`` positional arguments fails here, naming the contract, not mid-sweep."""
    import inspect
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        raise TypeError(f"Kernel {kernel!r}: {what} must take {params}") from None
    except ValueError:  # no signature (builtins): find out when called
        pass


def _with_context(exc: Exception, what: str) -> Exception:
    """The same kind of exception, saying where it came from (RuntimeError where that kind cannot be rebuilt)."""
    try:
        return type(exc)(f"{what}: {exc}")
    except Exception:  # noqa: BLE001 - constructors with other signatures
        return RuntimeError(f"{what}: {type(exc).__name__}: {exc}")
