"""Typed errors: each one says what failed and what to do next."""

from __future__ import annotations


class FutharkLabError(Exception):
    """Base class for every error futhark-lab raises on purpose."""


class FutharkNotFound(FutharkLabError):
    """The futhark compiler is not on PATH (nor named by $FUTHARK)."""


class FutharkCompileError(FutharkLabError):
    """The futhark compiler (or the C compiler after it) rejected the program.

    ``message`` is the compiler's own text with file names mapped back to what the user wrote.
    """

    def __init__(self, message: str, *, command: list[str] | None = None, stage: str = "futhark"):
        super().__init__(message)
        self.message = message
        self.command = command or []
        self.stage = stage

    def __str__(self) -> str:  # the compiler's text is the useful part; keep it verbatim
        return self.message


class FutharkError(FutharkLabError):
    """A Futhark runtime failure (bounds check, failed assert, out of memory, driver error)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class FutharkOutOfMemory(FutharkError, MemoryError):
    """The runtime reported FUTHARK_OUT_OF_MEMORY (error code 3)."""


class BackendUnavailable(FutharkLabError):
    """A backend cannot run here (no device, driver mismatch, missing library).

    Raised instead of letting the Futhark runtime call exit() inside the interpreter.
    """

    def __init__(self, backend: str, reason: str, fix: str = ""):
        self.backend = backend
        self.reason = reason
        self.fix = fix
        text = f"backend {backend!r} is unavailable: {reason}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)


class PeerUnavailable(FutharkLabError, ImportError):
    """A peer library (JAX, CuPy, Triton, Numba, PyCUDA, torch.compile's compiler) cannot run here.

    A sweep records it as the implementation's skip reason with ``hint`` (the install line), never as a crash.
    """

    def __init__(self, peer: str, reason: str, hint: str = ""):
        self.peer = peer
        self.reason = reason
        self.hint = hint
        text = f"peer {peer!r} skipped: {reason}"
        if hint:
            text += f"; install: {hint}"
        super().__init__(text)
