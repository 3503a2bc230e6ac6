"""``futhark_lab.explore()``: an ipywidgets panel (kernel, implementations, backends, size range, dtype) that runs
the sweep with a progress bar and redraws the plots whenever a choice changes.  Results land in the same DataFrame
and results/ files as any sweep."""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as W

from ..measure.store import new_run_id
from ..measure.timing import Policy
from ..sweep.impls.futhark import futhark
from ..sweep.impls.numpy_cpu import numpy_impl
from ..sweep.impls.torch_eager import torch
from ..sweep.kernel import Kernel
from ..sweep.run import sweep
from . import plots

PLOTS = {"throughput": plots.throughput, "time": plots.time_vs_size, "roofline": plots.roofline,
         "speedup over numpy": lambda df: plots.speedup(df, "numpy")}


class Explorer:
    """The panel's state and logic, testable without a browser: set a widget's value and a sweep runs."""

    def __init__(self, kernels: dict[str, Kernel], *, backends: tuple[str, ...] = ("c", "multicore"),
                 others: tuple[str, ...] = ("numpy", "torch-cpu"), run_id: str | None = None,
                 results: str | None = None, policy: Policy | None = None, auto_run: bool = True):
        self.kernels = kernels
        self.run_id = run_id or new_run_id("explore")
        self.results = results
        self.policy = policy or Policy(max_time_s=0.5, min_time_s=0.05, max_noise=0.03)
        self.df = None
        self.figure = None
        self.runs = 0
        first = next(iter(kernels.values()))
        self.kernel = W.Dropdown(options=list(kernels), value=first.name, description="kernel")
        self.backends = W.SelectMultiple(options=list(backends), value=tuple(backends[:1]), description="futhark")
        self.others = W.SelectMultiple(options=list(others), value=tuple(others[:1]), description="others")
        lo, hi = self._size_range(first)
        self.sizes = W.IntRangeSlider(value=(lo, min(hi, lo + 2)), min=lo, max=hi, description="log10 size")
        self.dtype = W.Dropdown(options=list(first.dtypes), value=first.dtypes[0], description="dtype")
        self.plot = W.Dropdown(options=list(PLOTS), value="throughput", description="plot")
        self.run_button = W.Button(description="Run", button_style="primary")
        self.status = W.HTML()
        # plain widgets (no Output capture): the plot is an Image widget, progress an IntProgress
        self.image = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.bar = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.auto_run = auto_run
        self.kernel.observe(self._kernel_changed, names="value")
        for w in (self.backends, self.others, self.sizes, self.dtype):
            w.observe(self._changed, names="value")
        self.plot.observe(lambda _: self.redraw(), names="value")
        self.run_button.on_click(lambda _: self.run(again=True))
        self.panel = W.VBox([W.HBox([self.kernel, self.dtype, self.plot]),
                             W.HBox([self.backends, self.others]),
                             W.HBox([self.sizes, self.run_button]), self.status, self.bar, self.image])

    @staticmethod
    def _size_range(k: Kernel) -> tuple[int, int]:
        return int(math.floor(math.log10(min(k.sizes)))), int(math.ceil(math.log10(max(k.sizes))))

    def _kernel_changed(self, change) -> None:
        k = self.kernels[change["new"]]
        self.auto_run, auto = False, self.auto_run  # one sweep for the whole change, not one per widget
        try:
            self.dtype.options = list(k.dtypes)
            self.dtype.value = k.dtypes[0]
            lo, hi = self._size_range(k)
            self.sizes.min, self.sizes.max = min(lo, self.sizes.min), max(hi, self.sizes.max)
            self.sizes.value = (lo, min(hi, lo + 2))
            self.sizes.min, self.sizes.max = lo, hi
        finally:
            self.auto_run = auto
        self._changed(None)

    def _changed(self, _change) -> None:
        if self.auto_run:
            self.run()

    def impls(self) -> list:
        k = self.kernels[self.kernel.value]
        out = [futhark(b) for b in self.backends.value]
        for o in self.others.value:
            if o == "numpy":
                out.append(numpy_impl())
            elif o.startswith("torch-"):
                dev = o.split("-", 1)[1]
                out += [torch(dev, None if v == "default" else v) for v in k.torch]
        return out

    def run(self, again: bool = False) -> Any:
        """Sweep the present choices.  Points this explorer measured before are kept, except with ``again`` (the
        Run button): then everything chosen is measured afresh, into a new run."""
        if again:
            self.run_id = new_run_id("explore")
        k = self.kernels[self.kernel.value]
        lo, hi = self.sizes.value
        sizes = [10**e for e in range(lo, hi + 1)]
        impls = self.impls()
        if not impls:
            self.status.value = "<b>choose at least one implementation</b>"
            return self.df
        self.status.value = f"running {k.name}: {len(impls)} implementation(s) × {len(sizes)} size(s)…"
        self.bar.value, self.bar.max = 0, len(impls) * len(sizes)
        self.bar.description = "measuring"
        self.run_button.disabled, self.run_button.description = True, "Running…"

        def advance(done: int, total: int) -> None:
            self.bar.max, self.bar.value = max(total, 1), done
            self.bar.description = f"{done}/{total}"
        try:
            self.df = sweep(k, impls, sizes=sizes, dtypes=[self.dtype.value], run_id=self.run_id,
                            results=self.results, policy=self.policy, rounds=2, progress=False, on_point=advance,
                            on_error="record")
        except Exception as exc:  # noqa: BLE001 - shown in the panel: a callback's exception would vanish
            self.status.value = f"<b>sweep failed:</b> <code>{html.escape(f'{type(exc).__name__}: {exc}')}</code>"
            return self.df
        finally:
            self.run_button.disabled, self.run_button.description = False, "Run"
        self.runs += 1
        self.bar.value, self.bar.description = self.bar.max, "done"
        self.status.value = f"run <code>{self.run_id}</code>: {len(self.df)} points so far" + self._errors()
        self.redraw()
        return self.df

    def _errors(self) -> str:
        """The first error of each chosen implementation that failed, so a failure is never just a missing line."""
        d = self.current()
        if d is None or "error" not in d:
            return ""
        bad = d[d["error"].notna()].drop_duplicates("impl")
        return "".join(f"<br><b>{html.escape(r.impl)} failed:</b> <code>{html.escape(str(r.error))}</code>"
                       for r in bad.itertuples())

    def current(self):
        """Rows matching the present choices."""
        if self.df is None:
            return None
        d = self.df
        names = {i.name for i in self.impls()}
        lo, hi = self.sizes.value
        return d[(d["kernel"] == self.kernel.value) & (d["dtype"] == self.dtype.value) & d["impl"].isin(names)
                 & (d["size"] >= 10**lo) & (d["size"] <= 10**hi)]

    def redraw(self) -> None:
        d = self.current()
        if d is None or d.empty:
            return
        try:
            self.figure = PLOTS[self.plot.value](d)
        except ValueError as exc:  # e.g. speedup without a NumPy baseline
            self.status.value = f"<b>{exc}</b>"
            return
        import io

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        self.image.value = buf.getvalue()

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.panel)


def explore(kernels: dict[str, Kernel] | None = None, **kwargs) -> Explorer:
    """Open the explorer on the kernel suite (or the kernels given); the first sweep runs at once."""
    if kernels is None:
        from ..suite import load
        kernels = load().KERNELS
    ex = Explorer(kernels, **kwargs)
    if ex.auto_run:
        ex.run()
    return ex
