"""Property-based tests (hypothesis) on the reader and the resampler: any input either scores
with probabilities summing to 1 or gives an error row, and there is always one row per input."""

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sgmine import predict
from sgmine.gr import ReadError, read_gr
from sgmine.grid import Grid, GridError, resample

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def curves(draw, elements=finite):
    n = draw(st.integers(min_value=0, max_value=400))
    r = draw(arrays(np.float64, n, elements=elements))
    g = draw(arrays(np.float64, n, elements=elements))
    return r, g


@st.composite
def plausible_curves(draw):
    """Curves that look like measurements: sorted r over some range, G with noise."""
    n = draw(st.integers(min_value=2, max_value=3000))
    r0 = draw(st.floats(min_value=-5, max_value=40))
    r1 = r0 + draw(st.floats(min_value=0.01, max_value=100))
    r = np.linspace(r0, r1, n)
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    g = np.random.default_rng(seed).normal(size=n) * draw(st.floats(min_value=0, max_value=1e3))
    return r, g


@settings(max_examples=300, deadline=None)
@given(st.one_of(curves(), curves(any_float), plausible_curves()))
def test_resample_is_on_the_grid_or_raises(curve):
    r, g = curve
    try:
        out = resample(r, g, Grid())
    except GridError:
        return
    assert out.values.shape == (209,)
    assert np.isfinite(out.values).all()
    assert out.values.min() == 0.0 and math.isclose(out.values.max(), 1.0)
    assert Grid().rmin <= out.r_min <= out.r_max <= Grid().rmax


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(curves(), curves(any_float), plausible_curves()), max_size=6))
def test_predict_one_row_per_input_and_normalised_probabilities(template_model, items):
    preds = predict(items, top_k=8, model=template_model)
    assert len(preds) == len(items)
    for p in preds:
        if p.ok:
            assert len(p.candidates) == 8
            assert math.isclose(sum(c.probability for c in p.candidates), 1.0, abs_tol=1e-5)
        else:
            assert p.status == "error" and p.message and not p.candidates


@st.composite
def gr_texts(draw):
    """Text that looks partly like a .gr file: header lines, numbers, junk, odd separators."""
    line = st.one_of(
        st.builds(lambda a, b: f"{a} {b}", finite, finite),
        st.builds(lambda a, b, c: f"{a},{b};{c}", finite, finite, finite),
        st.builds(lambda k, v: f"{k} = {v}", st.text(max_size=8), st.text(max_size=8)),
        st.text(max_size=30),
        st.sampled_from(["#### start data", "#L r G", "nan inf", "1e999 -1e999", "", "  \t"]),
    )
    lines = draw(st.lists(line, max_size=60))
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=2000), gr_texts().map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_reader_returns_a_curve_or_a_read_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.gr"
        path.write_bytes(content)
        try:
            curve = read_gr(path)
        except ReadError as exc:
            assert str(path) in str(exc)
            return
        assert curve.r.shape == curve.g.shape and curve.r.size >= 2
        assert curve.r.dtype == np.float64


@st.composite
def gr_files(draw):
    """Files like a beamline writes them: a header of ``key = value`` and comment lines, then
    rows of r and G (and sometimes more columns) with r increasing from anywhere to anywhere,
    printed with varying precision; sometimes blank lines at the end or junk lines in the body."""
    header = draw(st.lists(st.sampled_from(["# comment", "qmax = 25.0", "[PDF]", "#### start data", "#L r G(r)", ""]),
                           max_size=40))
    n = draw(st.integers(min_value=0, max_value=4000))
    r0 = draw(st.floats(min_value=-2, max_value=35))
    step = draw(st.floats(min_value=0.001, max_value=0.5))
    ncols = draw(st.integers(min_value=2, max_value=4))
    digits = draw(st.integers(min_value=2, max_value=9))
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    rows = [" ".join([f"{r0 + i * step:.{digits}f}"] + [f"{v:.{digits}g}" for v in rng.normal(size=ncols - 1)])
            for i in range(n)]
    if rows and draw(st.booleans()):
        where = draw(st.one_of(st.integers(min_value=0, max_value=len(rows) - 1),
                               st.integers(min_value=0, max_value=min(len(rows) - 1, 40))))
        rows[where] = draw(st.sampled_from(["", "# note", "x y", "1.0", "nan nan"]))
    tail = draw(st.sampled_from(["", "\n", "\n\n  \n", "\n1.0"]))
    return "\n".join(header + rows) + tail


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gr_files())
def test_windowed_read_gives_what_a_full_read_gives(text):
    """Reading only the rows around the grid (bisection over the file's characters) puts exactly
    the same values on the grid as reading the whole file, or fails the same way."""
    grid = Grid()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.gr"
        path.write_text(text)
        outcomes = []
        for r_range in (None, (grid.rmin, grid.rmax)):
            try:
                curve = read_gr(path, r_range=r_range)
                outcomes.append((resample(curve.r, curve.g, grid).values, curve.metadata))
            except (ReadError, GridError) as exc:
                outcomes.append(type(exc).__name__)
    if isinstance(outcomes[0], str) or isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        np.testing.assert_array_equal(outcomes[1][0], outcomes[0][0])
        assert outcomes[1][1] == outcomes[0][1]
