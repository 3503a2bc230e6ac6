"""The result store loses nothing: a torn line costs only itself, writers in several processes never interleave,
and a sweep killed at random moments resumes to every point exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from futhark_lab.measure.store import RunStore, load_run

from .conftest import ROOT


def _row(size: int, pad: int = 0) -> dict:
    return {"kernel": "k", "impl": "i", "size": size, "dtype": "f64", "samples_s": [0.5] * pad}


def test_a_torn_last_line_costs_only_itself(tmp_path):
    store = RunStore("torn", tmp_path)
    store.append(_row(0))
    store.append(_row(1))
    data = store.points.read_bytes()
    store.points.write_bytes(data[: len(data) - 10])  # a kill in the middle of writing point 1
    store.append(_row(2))
    store.append(_row(3))
    assert [r["size"] for r in store.rows()] == [0, 2, 3]
    # the file itself is clean again: every line parses on its own (bench and reports read it too)
    lines = store.points.read_text().splitlines()
    assert [json.loads(line)["size"] for line in lines] == [0, 2, 3]
    assert sorted(load_run(tmp_path / "torn")["size"]) == [0, 2, 3]


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path):
    store = RunStore("nonl", tmp_path)
    store.append(_row(0))
    store.points.write_bytes(store.points.read_bytes().rstrip(b"\n"))
    store.append(_row(1))
    assert [r["size"] for r in store.rows()] == [0, 1]


def test_a_line_glued_to_a_fragment_by_an_older_writer_is_recovered(tmp_path):
    store = RunStore("glued", tmp_path)
    whole = json.dumps(_row(7, pad=3))
    store.points.write_text(json.dumps(_row(0)) + "\n" + '{"kernel": "k", "samples_s": [{"a"' + whole + "\n")
    assert [r["size"] for r in store.rows()] == [0, 7]


def test_a_torn_line_in_the_middle_leaves_its_neighbours(tmp_path):
    store = RunStore("mid", tmp_path)
    store.points.write_text(json.dumps(_row(0)) + "\n" + '{"kernel": "k", "si\n' + json.dumps(_row(2)) + "\n")
    assert [r["size"] for r in store.rows()] == [0, 2]


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from futhark_lab.measure.store import RunStore
    root, who, n, pad = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = RunStore("shared", root)
    for i in range(n):
        store.append({"kernel": "k", "impl": f"w{who}", "size": i, "dtype": "f64",
                      "samples_s": [who + i / 1000] * pad})
""")


def test_concurrent_writers_never_interleave(tmp_path):
    procs, n, pad = 6, 150, 3000  # lines of ~20 kB: far past PIPE_BUF, so only the lock keeps them whole
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    children = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), str(n), str(pad)], env=env)
                for w in range(procs)]
    assert all(c.wait(timeout=120) == 0 for c in children)
    lines = (tmp_path / "shared" / "points.jsonl").read_text().splitlines()
    assert len(lines) == procs * n
    rows = [json.loads(line) for line in lines]  # every line whole
    for r in rows:
        who = int(r["impl"][1:])
        assert r["samples_s"] == [who + r["size"] / 1000] * pad
    for w in range(procs):
        assert [r["size"] for r in rows if r["impl"] == f"w{w}"] == list(range(n)), "each writer's order kept"


SWEEPER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from futhark_lab import sweep as sw, suite
    from futhark_lab.measure import Policy
    def slow(x, y):
        time.sleep(0.002)
        return np.dot(x, y)
    sw.sweep(suite.get("dot"), [sw.custom("slow", slow), sw.custom("slow2", slow)], sizes=SIZES,
             dtypes=["f64"], run_id="killed", results=sys.argv[1], progress=False, hardware=None, rounds=1,
             policy=Policy(warmup_s=0, min_samples=3, min_time_s=0.01, max_time_s=0.03, max_samples=400))
""")
SIZES = list(range(10, 10 + 25))


def _whole_lines(path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_bytes()
    return [json.loads(line) for line in text[: text.rfind(b"\n") + 1].splitlines()]  # lines fully written


def test_sweep_killed_at_random_moments_resumes_to_every_point_exactly_once(tmp_path):
    rnd = random.Random(25)
    script = SWEEPER.replace("SIZES", repr(SIZES))
    points = tmp_path / "killed" / "points.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    completed: set[tuple] = set()
    kills = 0
    for attempt in range(6):
        before = len(_whole_lines(points))
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and len(_whole_lines(points)) == before:
            time.sleep(0.005)  # wait for this run's first point, then kill at a random moment after it
        time.sleep(rnd.uniform(0, 0.4))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        rows = _whole_lines(points)
        assert len(rows) > before, "the run made progress before it was killed"
        if attempt % 2 == 1:  # also as if the kill had landed mid-line: cut the last line short
            data = points.read_bytes()
            points.write_bytes(data[: len(data) - 1 - rnd.randrange(1, 40)])
            rows = _whole_lines(points)
        completed |= {(r["impl"], r["size"]) for r in rows}
    assert kills >= 3
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, timeout=120)
    assert proc.returncode == 0
    df = load_run(tmp_path / "killed")
    got = list(zip(df["impl"], df["size"]))
    assert completed <= set(got), "a point completed before a kill was lost"
    assert sorted(got) == sorted((i, n) for i in ("slow", "slow2") for n in SIZES), "every point exactly once"
    assert df["correct"].all()


def test_a_line_that_is_no_point_is_skipped_and_resume_still_works(tmp_path):
    """Found by a blind hostile review: a JSON object without a kernel (a hand-written note) made done_keys() raise a
    bare KeyError, so the run could not resume."""
    store = RunStore("r", tmp_path)
    store.append(_row(0))
    with open(store.points, "ab") as f:
        f.write(b'{"note": "hand-written"}\n[1, 2, 3]\n')
    store.append(_row(1))
    assert [r["size"] for r in store.rows()] == [0, 1]
    assert store.done_keys() == {("k", "i", 0, "f64"), ("k", "i", 1, "f64")}
