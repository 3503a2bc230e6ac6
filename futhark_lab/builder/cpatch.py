"""Make futhark's generated C safe to call from an interpreter that must not die.

futhark's C runtime assumes its caller is a command-line program: conditions a user's argument can reach end the
process.  Each patch below turns one of them into an ordinary error return (the binding then raises FutharkError
naming the entry point) or into the value every other backend gives.  Patches are text edits of known code shapes;
a shape that is not found is simply not patched (and logged), so a newer futhark that fixed the code is untouched.

- ``memblock_alloc*``: a negative size calls ``futhark_panic`` → ``exit(1)``.  Now it sets the context's error and
  returns FUTHARK_PROGRAM_ERROR.
- size products: the compiler's own size arithmetic (``int64_t bytes_1 = (int64_t) 8 * n;``, plain ``*`` because
  futhark treats its overflow as undefined) wraps for huge sizes, e.g. to 0 bytes for ``replicate (2**61) x``, and
  the code then writes far past the allocation (SIGSEGV).  Those statements use a checked multiply that records the
  overflow; the next allocation in the thread reports it instead of allocating.
  (futhark's own wrapping arithmetic, ``mul64``, is a function call and is not touched.)
- signed division ``INT_MIN / -1`` traps (SIGFPE) on x86 in ``sdiv``/``smod``/``squot``/``srem`` and their
  ``_safe`` forms.  They now give the two's-complement wrap-around (quotient INT_MIN, remainder 0), which is what
  the python backend and GPU backends return.
- ``memblock_alloc_device`` ignores ``gpu_alloc``'s result and tests ``ctx->error`` instead (0.25.x), but
  ``gpu_alloc`` returns FUTHARK_OUT_OF_MEMORY *without* setting an error when the driver refuses the size
  (CUDA_ERROR_OUT_OF_MEMORY, CL_MEM_OBJECT_ALLOCATION_FAILURE).  The failed allocation then counts as a success: the
  block holds whatever the driver left in the pointer (NULL), e.g. ``rep(2**40)`` "returns" 8 TiB on an 80 GB GPU;
  freeing it puts that bogus block on the free list, and a later allocation of any size reuses it (a host-to-device
  copy into NULL fails with "invalid argument", a kernel writing it faults, a sticky error).  Now the result is
  checked and an out-of-memory error recorded.
- ``host_alloc`` ignores ``malloc`` failure (0.25.8 up to at least 0.26.x): report out-of-memory instead; and a
  request larger than RAM + swap is refused up front (with overcommit, malloc would succeed and the OOM killer end
  the process while the array is written).

- record fields (``futhark_project_*``) and record construction (``futhark_new_opaque_*``) increment an array's
  reference count without checking it exists, but an array made by ``futhark_new_raw_*`` (memory wrapped from
  NumPy, PyTorch or a DLPack producer, runtime.dlpack) has none (``references == NULL``): a field of a record built
  from such an array dereferenced NULL (SIGSEGV).  The increment is now skipped where there is no count, as
  futhark's own ``memblock_set`` does.

Kernel sources (the ``gpu_program`` string array) get the same division answers, decoded and re-encoded, so
every backend agrees; and an OpenCL build that fails on its options ends context creation with an error instead of
``exit()``.
"""

from __future__ import annotations

import re

MARK = "futhark-lab patch"

_HOST_ALLOC = "    *mem_out = malloc(size);\n  }\n}"
_HOST_ALLOC_CHECKED = ("    *mem_out = futhark_lab_exceeds_memory(size) ? NULL : malloc(size);\n"
                       f"    if (*mem_out == NULL && size != 0 && ctx->error == NULL) {{  /* {MARK} */\n"
                       "      ctx->error = msgprintf(\"Cannot allocate %lld bytes of host memory for %s.\\n\",\n"
                       "                             (long long) size, tag);\n"
                       "    }\n  }\n}")

_PRELUDE = f"""/* {MARK}: checked size products (see futhark_lab/cpatch.py) */
#include <sys/sysinfo.h>
static __thread int futhark_lab_size_overflow = 0;
/* More than RAM + swap can never succeed; with overcommit malloc may still say yes and the OOM killer then ends
   the process (and starves its neighbours) while the array is filled. */
static int futhark_lab_exceeds_memory(size_t size) {{
  struct sysinfo si;
  if (size < ((size_t) 1 << 30) || sysinfo(&si) != 0) return 0;
  return (double) size > ((double) si.totalram + (double) si.totalswap) * (double) si.mem_unit;
}}
static inline int64_t futhark_lab_smul(int64_t a, int64_t b) {{
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {{ futhark_lab_size_overflow = 1; return INT64_MIN; }}
  return r;
}}
"""

_GPU_ALLOC_UNCHECKED = "    (void) gpu_alloc(ctx, ctx->log, (size_t) size, desc, &block->mem, (size_t *) &size);\n"
_GPU_ALLOC_CHECKED = (
    "    if (gpu_alloc(ctx, ctx->log, (size_t) size, desc, &block->mem, (size_t *) &size) != FUTHARK_SUCCESS\n"
    f"        && ctx->error == NULL) {{  /* {MARK}: the driver refused the size; never a NULL 'success' */\n"
    "      ctx->error = msgprintf(\"The GPU driver refused to allocate %lld bytes for %s (out of device "
    "memory).\\n\", (long long) size, desc);\n"
    "    }\n")

#: the runtime's forward declaration of set_error: after the standard headers, before the allocators and entries
_ANCHOR = "static void set_error(struct futhark_context* ctx, char *error);"
_NEG_ALLOC = re.compile(
    r'if \(size < 0\)\s*futhark_panic\(1, "Negative allocation of %lld bytes attempted for %s in %s\.\\n", '
    r'\(long long\) size, desc, ("[^"]*")[^;]*\);')


def _neg_alloc_fix(m: re.Match) -> str:
    space = m.group(1)
    return (f"if (size < 0 || futhark_lab_size_overflow) {{  /* {MARK} */\n"
            "        int overflow = futhark_lab_size_overflow;\n"
            "        futhark_lab_size_overflow = 0;\n"
            "        set_error(ctx, msgprintf(\"Invalid array size (%s): %s%lld bytes requested for %s in %s.\\n"
            "An array size passed to (or computed by) this entry point is negative or too large; "
            "check the sizes given as arguments.\\n\", overflow ? \"size overflow\" : \"negative size\", "
            f"overflow ? \"(wrapped) \" : \"\", (long long) size, desc, {space}));\n"
            "        return FUTHARK_PROGRAM_ERROR;\n    }")


_TERM = r"(?:\(int64_t\) \d+|[A-Za-z_]\w*)"
_PRODUCT = re.compile(rf"^(\s+int64_t \w+ = )({_TERM}(?: \* {_TERM})+);$", re.MULTILINE)


def _product_fix(m: re.Match) -> str:
    terms = m.group(2).split(" * ")
    expr = terms[0]
    for t in terms[1:]:
        expr = f"futhark_lab_smul({expr}, {t})"
    return f"{m.group(1)}{expr};"


# the function's opening brace: multi-line bodies (0.25) and one-line ones (0.27: ``{ return y == 0 ? 0 : x / y; }``)
_DIV = re.compile(r"^(SCALAR_FUN_ATTR int(8|16|32|64)_t (sdiv|squot|smod|srem)(?:_safe)?\2"
                  r"\(int\2_t x, int\2_t y\)\s*\{)", re.MULTILINE)


def _div_fix(m: re.Match) -> str:
    bits, op = m.group(2), m.group(3)
    value = f"(int{bits}_t) (0 - (uint{bits}_t) x)" if op in ("sdiv", "squot") else "0"
    return f"{m.group(1)}\n  if (y == -1) return {value};  /* {MARK}: no SIGFPE on INT_MIN / -1 */\n"


_CL_BUILD_FATAL = ("  if (clBuildProgram_error != CL_SUCCESS &&\n"
                   "      clBuildProgram_error != CL_BUILD_PROGRAM_FAILURE) {\n"
                   "    OPENCL_SUCCEED_FATAL(clBuildProgram_error);\n  }")
_CL_BUILD_REPORTED = ("  if (clBuildProgram_error != CL_SUCCESS &&\n"
                      "      clBuildProgram_error != CL_BUILD_PROGRAM_FAILURE) {  /* " + MARK + " */\n"
                      "    *log = msgprintf(\"clBuildProgram failed: %s (are the build options valid?)\\n\",\n"
                      "                     opencl_error_string(clBuildProgram_error));\n"
                      "    return CL_BUILD_ERROR;\n  }")

#: the GPU program: an array of string literals (split anywhere), joined by the runtime
_GPU_PROGRAM = re.compile(r"(static const char \*gpu_program\[\] = \{)(.*?)(, NULL\};)", re.DOTALL)
_C_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "0": "\0", "?": "?"}


def _c_unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), "\\" + m.group(1)), s)


def _c_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def _patch_gpu_program(text: str, log: list[str]) -> str:
    """The same INT_MIN / -1 answers inside kernels (PoCL gave -1 for INT_MIN % -1; GPUs leave it undefined)."""
    m = _GPU_PROGRAM.search(text)
    if not m:
        return text
    pieces = _C_LITERAL.findall(m.group(2))
    if not pieces or any("\\x" in p or re.search(r"\\[1-7]", p) for p in pieces):
        return text  # escapes this decoder does not know: leave the kernels alone
    program = "".join(_c_unescape(p) for p in pieces)
    program, n = _DIV.subn(_div_fix, program)
    if not n:
        return text
    chunks = ", ".join(f'"{_c_escape(program[i:i + 2000])}"' for i in range(0, len(program), 2000))
    log.append(f"# futhark-lab: {n} signed division function(s) in the GPU program wrap on INT_MIN / -1")
    return text[:m.start()] + m.group(1) + chunks + m.group(3) + text[m.end():]


_RAW_REF = re.compile(r"\(void\) \(\*((?:\w+->)+)mem\.references\)\+\+;")


def _raw_ref_fix(m: re.Match) -> str:
    return f"if ({m.group(1)}mem.references != NULL) (void) (*{m.group(1)}mem.references)++;  /* {MARK}: raw arrays */"


def patch_text(text: str, log: list[str]) -> str:
    """The patched source (idempotent: already patched text comes back unchanged)."""
    if MARK in text:
        return text
    if _HOST_ALLOC in text and _ANCHOR in text:  # the check it calls comes in with the prelude, at the anchor
        text = text.replace(_HOST_ALLOC, _HOST_ALLOC_CHECKED, 1)
        log.append("# futhark-lab: patched host_alloc to report malloc failure (out of memory) instead of crashing")
    at = text.find(_ANCHOR)
    n_alloc = 0
    if at >= 0:
        head, tail = text[:at], text[at:]
        tail, n_alloc = _NEG_ALLOC.subn(_neg_alloc_fix, tail)
    if n_alloc:
        tail, n_mul = _PRODUCT.subn(_product_fix, tail)
        text = head + _PRELUDE + tail
        log.append(f"# futhark-lab: {n_alloc} allocator(s) report negative/overflowing sizes instead of exit(1); "
                   f"{n_mul} size product(s) checked for overflow")
    n_gpu = text.count(_GPU_ALLOC_UNCHECKED)
    if n_gpu:
        text = text.replace(_GPU_ALLOC_UNCHECKED, _GPU_ALLOC_CHECKED)
        log.append(f"# futhark-lab: {n_gpu} device allocator(s) report a refused allocation instead of using NULL")
    if _CL_BUILD_FATAL in text:
        text = text.replace(_CL_BUILD_FATAL, _CL_BUILD_REPORTED, 1)
        log.append("# futhark-lab: invalid OpenCL build options fail context creation instead of exiting")
    text = _patch_gpu_program(text, log)
    text, n_ref = _RAW_REF.subn(_raw_ref_fix, text)
    if n_ref:
        log.append(f"# futhark-lab: {n_ref} field/record reference count(s) skipped for raw (wrapped) arrays")
    text, n_div = _DIV.subn(_div_fix, text)
    if n_div:
        log.append(f"# futhark-lab: {n_div} signed division function(s) wrap on INT_MIN / -1 instead of SIGFPE")
    return text


# --------------------------------------------------------------------------- the python backend's generated module

_PY_ALLOC = "def allocateMem(size):\n    return np.empty(size, dtype=np.byte)\n"
_PY_ALLOC_CHECKED = f'''def allocateMem(size):  # {MARK}: more than RAM + swap would be filled until the OOM killer ends the process
    import os as _os
    if size >= 1 << 30:
        _mem = _os.sysconf("SC_PHYS_PAGES") * _os.sysconf("SC_PAGE_SIZE")
        try:
            with open("/proc/meminfo") as _f:
                _mem += 1024 * next((int(_l.split()[1]) for _l in _f if _l.startswith("SwapTotal:")), 0)
        except OSError:
            pass
        if size > _mem:
            raise MemoryError("cannot allocate %d bytes: more than this machine's memory" % size)
    return np.empty(size, dtype=np.byte)
'''


_PY_QUOT = re.compile(r"^def squotN\(x, y\):\n.*?\n\n\ndef sremN\(x, y\):\n.*?\n\n\n", re.MULTILINE | re.DOTALL)
_PY_QUOT_EXACT = f'''def _futhark_lab_trunc(x, y):  # {MARK}: exact, also for INT_MIN (np.abs(INT_MIN) is negative)
    q = abs(int(x)) // abs(int(y))
    return q if (x < 0) == (y < 0) else -q


def _futhark_lab_wrap(t, v):
    bits = np.dtype(t).itemsize * 8
    return t((v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1)))


def squotN(x, y):
    if y == 0:
        return intlit(type(x), 0)
    return _futhark_lab_wrap(type(x), _futhark_lab_trunc(x, y))


def sremN(x, y):
    if y == 0:
        return intlit(type(x), 0)
    return _futhark_lab_wrap(type(x), int(x) - int(y) * _futhark_lab_trunc(x, y))


'''


_PY_SIZE = re.compile(r"^(\s+)((bytes|binop_[xy])_\d+) = \((\S+) \* (\S+)\)$", re.MULTILINE)
_PY_SIZE_HELPER = f'''

def _futhark_lab_size(a, b, bytes_count):  # {MARK}: size products checked as the C backends' are
    v = int(a) * int(b)
    if not -(1 << 63) <= v < (1 << 63) or (bytes_count and v < 0):
        raise ValueError("Invalid array size (%s): %d bytes; an array size passed to (or computed by) this entry "
                         "point is negative or too large" % ("negative size" if -(1 << 63) <= v else
                                                             "size overflow", v))
    return np.int64(v)
'''


def _py_size_fix(m: re.Match) -> str:
    return f"{m.group(1)}{m.group(2)} = _futhark_lab_size({m.group(4)}, {m.group(5)}, {m.group(3) == 'bytes'})"


def patch_python_text(text: str, log: list[str]) -> str:
    """The python backend allocates with np.empty, which overcommits like malloc: refuse the impossible.  Its
    squot/srem go through np.abs, which is wrong for INT_MIN and imprecise nowhere else: exact versions."""
    if MARK in text:
        return text
    if _PY_ALLOC in text:
        text = text.replace(_PY_ALLOC, _PY_ALLOC_CHECKED, 1)
        log.append("# futhark-lab: allocateMem refuses more than RAM + swap instead of being OOM-killed")
    text, n = _PY_QUOT.subn(lambda m: _PY_QUOT_EXACT, text, count=1)
    if n:
        log.append("# futhark-lab: squot/srem exact for INT_MIN")
    text, n = _PY_SIZE.subn(_py_size_fix, text)
    if n and _PY_ALLOC_CHECKED in text:
        text = text.replace(_PY_ALLOC_CHECKED, _PY_ALLOC_CHECKED + _PY_SIZE_HELPER, 1)
        log.append(f"# futhark-lab: {n} size product(s) checked for overflow and negative byte counts")
    text, n = _DIV.subn(_div_fix, text)  # pyopencl: the kernel source is a plain triple-quoted string
    if n:
        log.append(f"# futhark-lab: {n} signed division function(s) in the OpenCL program wrap on INT_MIN / -1")
    return text
