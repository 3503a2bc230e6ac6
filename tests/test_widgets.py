"""The explorer's logic from Python: changing a widget's value runs a new sweep and redraws."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("ipywidgets")

from futhark_lab.measure.timing import Policy  # noqa: E402
from futhark_lab.view.widgets import Explorer  # noqa: E402

from .conftest import have_futhark  # noqa: E402

QUICK = Policy(warmup_s=0.0, min_samples=3, min_time_s=0.0, max_time_s=0.05, max_noise=0.5)


@pytest.fixture
def explorer(tmp_path):
    from futhark_lab import suite
    kernels = {k: suite.get(k) for k in ("dot", "saxpy")}
    backends = ("c",) if have_futhark() else ()
    ex = Explorer(kernels, backends=backends, others=("numpy", "torch-cpu"), results=str(tmp_path), policy=QUICK)
    ex.backends.value = ()
    ex.others.value = ("numpy",)   # each change above already ran a sweep: count from here
    return ex


def test_changing_a_widget_runs_a_sweep_and_redraws(explorer):
    runs = explorer.runs
    explorer.sizes.value = (3, 4)
    assert explorer.runs == runs + 1
    assert set(explorer.current()["size"]) == {1000, 10000}
    fig1 = explorer.figure
    explorer.kernel.value = "saxpy"
    assert explorer.runs == runs + 2, "a kernel change is one sweep, not one per dependent widget"
    assert set(explorer.current()["kernel"]) == {"saxpy"}
    assert explorer.figure is not fig1
    assert "saxpy" in explorer.figure.axes[0].get_title()


def test_plot_choice_redraws_without_measuring(explorer):
    explorer.sizes.value = (3, 3)
    runs = explorer.runs
    explorer.plot.value = "time"
    assert explorer.runs == runs
    assert "time" in explorer.figure.axes[0].get_ylabel()


def test_results_land_in_the_run_directory(explorer, tmp_path):
    explorer.sizes.value = (3, 3)
    assert (tmp_path / explorer.run_id / "points.jsonl").exists()
    assert explorer.df.attrs["run_id"] == explorer.run_id


@pytest.mark.skipif(not have_futhark(), reason="the futhark compiler is not installed")
def test_futhark_backend_choice(explorer):
    explorer.backends.value = ("c",)
    assert "futhark-c" in set(explorer.current()["impl"])


def test_run_button_measures_again_and_shows_progress(explorer):
    explorer.sizes.value = (3, 4)
    before = explorer.current()[["impl", "size", "timestamp"]].copy()
    old_run = explorer.run_id
    seen = []
    explorer.bar.observe(lambda ch: seen.append(ch["new"]), names="value")
    explorer.run_button.click()   # nothing changed: a click must still measure
    assert explorer.run_id != old_run
    now = explorer.current()
    assert len(now) == len(before) and (now["timestamp"].min() > before["timestamp"].max())
    assert seen[-1] == explorer.bar.max == len(now) and 1 in seen, f"progress went {seen}"
    assert not explorer.run_button.disabled and explorer.run_button.description == "Run"


def test_a_failing_implementation_is_shown_in_the_panel(explorer):
    pytest.importorskip("torch")

    def broken(x, y):
        raise RuntimeError("kaput")
    explorer.kernels["dot"] = dataclasses.replace(explorer.kernels["dot"], torch={"default": broken})
    explorer.others.value = ("numpy", "torch-cpu")
    assert "torch-cpu failed" in explorer.status.value and "kaput" in explorer.status.value
