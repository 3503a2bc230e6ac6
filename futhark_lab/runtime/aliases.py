"""Alias groups: which live values may share memory, by Futhark's rules as the manifest states them.

A nonunique entry-point output aliases every nonconsuming input of its call (and the call's other nonunique
outputs); a record's fields and projections alias the record; an array wrapping or exported to another library's
memory (PyTorch, CuPy, NumPy on the python backends) aliases that memory.  Futhark lets a consuming (``*``)
parameter update its argument in place, which every alias would see.

Choice: a value passed to a consuming parameter while another live value of its group exists, or while its memory
is shared with another library, is *copied* first and the copy consumed; the aliases keep their values.  The
manifest's aliasing is an over-approximation (``map (+1) xs`` returns fresh memory yet is declared as aliasing
``xs``), so marking every alias consumed would make correct programs raise; a copy is paid only where another
value could see the change.  The passed value itself is marked consumed either way, so behaviour does not depend on
what else happens to be alive.  Declaring the output unique (``*[]f64``) or dropping the aliases avoids the copy.

Bookkeeping is a live count per group (union-find, counts at the root), so the fast entry path only attaches the
input's group to its result and adds one; a value leaving (freed, consumed) subtracts one.
"""

from __future__ import annotations

from typing import Any


class AliasGroup:
    """Values that may share memory.  ``live``: how many usable values are in the group (at the root);
    ``shared``: why the memory is also another library's (None if it is not); ``keep``: that library's objects
    (a NumPy array, a DLPack capsule) whose memory members may use, kept alive as long as any member refers to the
    group (every member's group leads to the root); ``read_only``: some of that memory is read-only for its owner
    (a read-only NumPy array, a DLPack capsule flagged read-only), so no member is exported as writable."""

    __slots__ = ("live", "parent", "shared", "keep", "read_only")

    def __init__(self, live: int = 1, shared: str | None = None):
        self.live = live
        self.parent: AliasGroup | None = None
        self.shared = shared
        self.keep: list | None = None
        self.read_only = False

    def root(self) -> "AliasGroup":
        g = self
        while g.parent is not None:
            g = g.parent
        if g is not self:   # path compression: the next lookup is one step
            self.parent = g
        return g


def group_of(v: Any) -> AliasGroup:
    """``v``'s group (root), made now if ``v`` had none."""
    g = v._alias
    if g is None:
        g = v._alias = AliasGroup()
        return g
    if g.parent is not None:
        g = v._alias = g.root()
    return g


def join(groups: list[AliasGroup]) -> AliasGroup:
    """One group (root) for all of ``groups``."""
    roots: list[AliasGroup] = []
    for g in groups:
        r = g.root()
        if not any(r is x for x in roots):
            roots.append(r)
    top = roots[0]
    for r in roots[1:]:
        top.live += r.live
        r.live = 0
        r.parent = top
        if top.shared is None:
            top.shared = r.shared
        if r.keep:
            top.keep = (top.keep or []) + r.keep
        top.read_only = top.read_only or r.read_only
    return top


def alias_outputs(outputs: list[Any], sources: list[Any], shared: str | None = None, read_only: bool = False) -> None:
    """Put ``outputs`` (values of one call) into one group with ``sources`` (its live nonconsuming inputs); with
    ``shared``, that group also shares memory with another library (``read_only``: memory its owner may not
    write)."""
    if not outputs:
        return
    if not sources and shared is None and len(outputs) == 1:
        return   # a fresh value: no group until something aliases it
    groups = [group_of(s) for s in sources]
    g = join(groups) if groups else AliasGroup(0)
    for o in outputs:
        o._alias = g
        g.live += 1
    if shared is not None and g.shared is None:
        g.shared = shared
    g.read_only = g.read_only or read_only


def mark_shared(v: Any, why: str, keep: Any = None, read_only: bool = False) -> None:
    """``v``'s memory is now also another library's (exported or wrapped): never consume it in place.  ``keep``:
    the object owning that memory, kept alive while any value that may alias ``v`` lives (results, fields);
    ``read_only``: its owner lets no one write it."""
    g = group_of(v)
    if g.shared is None:
        g.shared = why
    if keep is not None:
        g.keep = (g.keep or []) + [keep]
    g.read_only = g.read_only or read_only


def is_read_only(v: Any) -> bool:
    """Whether ``v`` may alias memory its owner lets no one write (an export must say so)."""
    g = v._alias
    return g is not None and g.root().read_only


def leave(v: Any) -> None:
    """``v`` is no longer usable (freed or consumed): one fewer live member of its group."""
    g = v._alias
    if g is not None:
        v._alias = None
        g.root().live -= 1


def copy_reason(v: Any) -> str | None:
    """Why consuming ``v`` in place would be seen elsewhere, or None if it may be consumed in place."""
    g = v._alias
    if g is None:
        return None
    g = g.root()
    if g.shared is not None:
        return g.shared
    if g.live > 1:
        return f"{g.live - 1} other live value(s) may share its memory (outputs of calls that took it, or fields)"
    return None
