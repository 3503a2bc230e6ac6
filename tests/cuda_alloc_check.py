"""On a CUDA machine: device allocation failures are reported, nothing uses managed memory unasked, and a failed
call leaves the module usable (issue 13's cuda findings).  Prints one line per check; exit status 1 if any fails.

    FUTHARK_LAB_GENERATED=.gpu/hostile python -m tests.cuda_alloc_check      # code generated elsewhere

Checks (each after the previous ones, in one module, so a poisoned free list would show):
  patched      the build log says the device allocator's result is checked (cpatch)
  unmanaged    the runtime, with logging on, says "Using unmanaged memory" (unified memory off by default)
  oom_8tib     rep(2**40) raises FutharkOutOfMemory (futhark 0.25 took the refusal for success: a NULL array)
  oom_card     rep(more f64 than the card has) raises FutharkOutOfMemory
  usable       afterwards small calls give right answers: rep, array round trip, unflatten
  unflatten    impossible unflatten shapes are refused cleanly, the message names no temporary directory, and the
               module is not retired (an invalid argument is not a sticky error)
  big_fits     an array of a quarter of the card's memory works, then 8 TiB is refused again, then small calls work
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "tests" / "programs" / "hostile.fut"


def _card_bytes() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=60).stdout
        return int(out.split()[0]) * 2**20
    except Exception:  # noqa: BLE001
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    import futhark_lab

    from futhark_lab.errors import FutharkOutOfMemory

    results: list[tuple[str, bool, str]] = []

    def check(name: str, fn) -> None:
        try:
            detail = fn() or ""
            results.append((name, True, detail))
        except Exception as exc:  # noqa: BLE001 - the failure is the finding
            results.append((name, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"))
        ok, detail = results[-1][1], results[-1][2]
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail.strip()[:2000]}", flush=True)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="cuda", help="cuda (default); opencl only to try this script without a GPU")
    ap.add_argument("--card-gib", type=float, default=None, help="device memory (default: nvidia-smi's figure)")
    a = ap.parse_args(argv)
    m = futhark_lab.compile(PROGRAM, backend=a.backend)
    card = int(a.card_gib * 2**30) if a.card_gib else (_card_bytes() or 80 * 2**30)
    print(f"# card memory {card / 2**30:.1f} GiB; {m!r}", flush=True)

    def patched():
        log = m.build.log + (m.build.directory / "build.log").read_text(errors="replace")
        assert "refused allocation" in log, f"no allocator patch in the build log:\n{log[-2000:]}"
        return "allocator result checked"

    def unmanaged():
        code = textwrap.dedent(f"""
            import futhark_lab
            m = futhark_lab.compile({str(PROGRAM)!r}, backend="cuda", logging=True)
            print("SUM", m.rep(4).numpy().sum())
            """)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
        text = res.stdout + res.stderr
        assert res.returncode == 0 and "SUM 4.0" in res.stdout, text[-3000:]
        assert "Using unmanaged memory" in text and "Using managed memory" not in text, text[-3000:]
        return "runtime log: Using unmanaged memory"

    def expect_oom(n: int):
        def run():
            try:
                a = m.rep(n)
            except FutharkOutOfMemory as exc:
                assert ".tmp-" not in str(exc), str(exc)
                assert m.context.alive, "the module was retired"
                return f"FutharkOutOfMemory: {' | '.join(str(exc).splitlines()[:3])}"
            raise AssertionError(f"rep({n}) ({8 * n / 2**30:.0f} GiB) was accepted: {a!r}")
        return run

    def usable():
        assert m.rep(5).numpy().tolist() == [1.0] * 5
        assert m.array(np.arange(4)).numpy().tolist() == [0, 1, 2, 3]
        assert m.unfl(2, 3, np.arange(6, dtype=np.int32)).numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
        assert m.sum_f64(np.ones(1000)) == 1000.0
        return "rep, array, unflatten, sum correct"

    def unflatten():
        out = []
        for args in [(2**32, 2**32, np.zeros(0, np.int32)), (-1, -1, np.zeros(1, np.int32)),
                     (-1, -1, np.zeros(1, np.int32))]:
            try:
                m.unfl(*args)
            except futhark_lab.FutharkError as exc:
                text = str(exc)
                assert "unfl" in text and ".tmp-" not in text and "retired" not in text, text
                assert m.context.alive, f"retired after {args[:2]}: {text}"
                out.append(text.splitlines()[0][:120])
            else:
                raise AssertionError(f"unfl{args[:2]} accepted")
        usable()
        return " | ".join(out)

    def big_fits():
        n = card // 4 // 8
        a = m.rep(n)
        m.sync()
        assert a.shape == (n,)
        del a
        expect_oom(2**40)()
        usable()
        return f"rep({n}) ({8 * n / 2**30:.1f} GiB) fine, then 8 TiB refused, then small calls fine"

    check("patched", patched)
    if a.backend == "cuda":
        check("unmanaged", unmanaged)
    check("oom_8tib", expect_oom(2**40))
    check("oom_card", expect_oom(int(card * 1.5) // 8))
    check("usable", usable)
    check("unflatten", unflatten)
    check("big_fits", big_fits)
    bad = [n for n, ok, _ in results if not ok]
    print(f"cuda_alloc_check[{a.backend}]: {len(results) - len(bad)}/{len(results)} passed" + (f"; FAILED: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
