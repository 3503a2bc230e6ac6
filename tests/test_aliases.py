"""Aliasing and consumption (issue 25): a nonunique output aliases its call's nonconsuming inputs, fields alias their
record, memory shared with another library is never consumed in place.  runtime.aliases copies a value passed to a
consuming parameter while something else may see its memory; these tests check the aliases keep their values, that
the copy is made only then (Context.consume_copies), and that the consumed value itself is unusable."""

from __future__ import annotations

import numpy as np
import pytest

import futhark_lab
from futhark_lab.runtime.values import ConsumedError

from .conftest import PROGRAMS, cpu_backends, needs_futhark

pytestmark = needs_futhark

BACKENDS = [p for p in cpu_backends() if p.values[0] != "opencl"]   # opencl: the c path; pyopencl: the python one


@pytest.fixture(scope="module", params=BACKENDS)
def m(request):
    with futhark_lab.compile(PROGRAMS / "aliases.fut", backend=request.param) as mod:
        yield mod


def fresh(m):
    return m.array(np.array([1.0, 2.0, 3.0]), copy=True)   # its own memory (copy=None would share the NumPy array's)


def copies(m):
    return m.context.consume_copies


def test_issue_example_alias_keeps_its_value(m):
    x = fresh(m)
    y = m.id1(x)                        # y aliases x
    before = copies(m)
    np.testing.assert_array_equal(m.inc(y).numpy(), [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])
    assert copies(m) == before + 1
    with pytest.raises(ConsumedError, match=r"inc.*'xs'.*call #\d+ of inc"):
        y.numpy()


def test_no_alias_alive_consumes_in_place(m):
    x = fresh(m)
    before = copies(m)
    np.testing.assert_array_equal(m.inc(x).numpy(), [2.0, 2.0, 3.0])
    y = m.id1(fresh(m))                 # its input is gone: nothing else sees y's memory
    np.testing.assert_array_equal(m.inc(y).numpy(), [2.0, 2.0, 3.0])
    assert copies(m) == before
    with pytest.raises(ConsumedError, match="inc"):
        m.inc(x)


def test_dropped_alias_no_longer_forces_a_copy(m):
    x = fresh(m)
    y = m.id1(x)
    del y
    before = copies(m)
    m.inc(x)
    assert copies(m) == before


def test_unique_output_does_not_alias_its_input(m):
    x = fresh(m)
    f = m.fresh(x)                      # *[]f64: fresh memory
    before = copies(m)
    np.testing.assert_array_equal(m.inc(f).numpy(), [2.0, 2.0, 3.0])
    assert copies(m) == before
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])


def test_tuple_outputs(m):
    x = fresh(m)
    p, q = m.two(x)                     # ([]f64, *[]f64): p aliases x, q is fresh
    # futhark >= 0.26.1 returns the tuple as one opaque value whose manifest entry marks it unique as a whole (any
    # component unique), so the binding cannot tell q from p: both are taken to alias x, and q is copied too
    per_component = m.build.futhark.version < (0, 26, 1)
    before = copies(m)
    np.testing.assert_array_equal(m.inc(q).numpy(), [2.0, 2.0, 3.0])
    assert copies(m) == before + (0 if per_component else 1)
    np.testing.assert_array_equal(m.inc(p).numpy(), [2.0, 2.0, 3.0])
    assert copies(m) == before + (1 if per_component else 2)
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])


def test_consumed_alias_also_read_by_the_same_call(m):
    x = fresh(m)
    y = m.id1(x)
    assert m.inc_sum(y, x) == 13.0      # (2+2+3) + (1+2+3): x was not updated under the call
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])


def test_record_aliases_its_input_and_result_of_projection(m):
    x = fresh(m)
    r = m.mk(x)
    np.testing.assert_array_equal(m.eat(r).numpy(), [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])
    x2 = fresh(m)
    a = m.get_a(m.mk(x2))
    np.testing.assert_array_equal(m.inc(a).numpy(), [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(x2.numpy(), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("backend", ["c", "multicore"])
def test_fields_alias_their_record(backend):
    with futhark_lab.compile(PROGRAMS / "aliases.fut", backend=backend) as m:
        r = m.mk(fresh(m))
        a = r.a                         # a projection: the record's memory
        before = copies(m)
        m.inc(a)
        assert copies(m) == before + 1
        np.testing.assert_array_equal(m.get_a(r).numpy(), [1.0, 2.0, 3.0])
        b = r.a
        del r
        before = copies(m)
        m.inc(b)                        # the record is gone: in place
        assert copies(m) == before


def test_numpy_input_never_updated(m):
    """The python backends pass a NumPy input to the generated code as is; an output aliasing it shares it."""
    orig = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m.inc(m.id1(orig)).numpy(), [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(orig, [1.0, 2.0, 3.0])


def test_torch_cpu_tensor_never_consumed_in_place(m):
    """On CPU backends module.array() copies a tensor (no CPU sharing exists); a tensor passed directly was updated
    in place by the python backend (np.asarray shares its memory)."""
    torch = pytest.importorskip("torch")
    for make in (lambda t: t, m.array, lambda t: m.id1(t)):
        t = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        np.testing.assert_array_equal(m.inc(make(t)).numpy(), [2.0, 2.0, 3.0])
        assert t.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("backend", ["c", "multicore"])   # data_ptr() is the C backends'
def test_exported_array_gets_a_copy(backend):
    with futhark_lab.compile(PROGRAMS / "aliases.fut", backend=backend) as m:
        x = fresh(m)
        x.data_ptr()                        # its address is out: another library may hold it
        before = copies(m)
        m.inc(x)
        assert copies(m) == before + 1
