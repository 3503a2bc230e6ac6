"""`futhark-lab generate`: futhark's output stored for a machine without futhark."""

from __future__ import annotations


def main(a) -> int:
    from ..builder.generated import export_generated
    from ..runtime.doctor import TINY

    for b in a.backends.split(","):
        for src in a.sources:
            print(export_generated(src, b, a.out))
        # doctor's test program too, so `doctor` and `demo` find this backend working on the other machine
        export_generated(TINY, b, a.out)
    return 0


def add(sub) -> None:
    p = sub.add_parser("generate", help="run futhark here for a machine without it ($FUTHARK_LAB_GENERATED there)",
                       description="Store futhark's output (C or Python) for each source and backend under OUT; on "
                                   "a machine without futhark, set FUTHARK_LAB_GENERATED=OUT and compile as usual: "
                                   "only the C compiler runs there.")
    p.add_argument("sources", nargs="+", help=".fut files")
    p.add_argument("--backends", required=True, help="comma-separated, e.g. cuda,opencl,pyopencl")
    p.add_argument("--out", required=True, help="directory to write into")
    p.set_defaults(func=main)
