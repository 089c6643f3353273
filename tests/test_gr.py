"""Reading .gr files and their headers, on the real measured files."""

import numpy as np
import pytest

from sgmine.gr import ReadError, header_value, read_gr


def test_xpdfsuite_header_and_data(data_dir):
    curve = read_gr(data_dir / "Ni.gr")
    assert curve.r.shape == curve.g.shape == (6001,)
    assert curve.r[0] == 0.0 and curve.r[-1] == 60.0
    assert curve.g[1] == pytest.approx(-0.000497956)
    assert curve.qmax == 25.0
    assert curve.metadata["composition"] == "Ni"
    assert curve.metadata["mode"] == "xray"
    assert curve.metadata["wavelength"] == pytest.approx(0.1836)


def test_pdfgetx2_style_file_without_header(data_dir):
    curve = read_gr(data_dir / "Si.gr")
    assert curve.r.size == 5999
    assert curve.r[0] == pytest.approx(0.01) and curve.g[0] == pytest.approx(0.12286489)
    assert curve.qmax is None and curve.metadata == {}


def test_plain_columns_and_extra_columns(tmp_path):
    r = np.linspace(0, 30, 50)
    path = tmp_path / "four_columns.gr"
    np.savetxt(path, np.column_stack([r, np.sin(r), np.full_like(r, 0.01), np.full_like(r, 0.02)]))
    curve = read_gr(path)
    np.testing.assert_allclose(curve.g, np.sin(r))


def test_pdfgetx3_header_keys(tmp_path):
    path = tmp_path / "x3.gr"
    path.write_text(
        "[DEFAULT]\nversion = pdfgetx-2.1\n\n# input and output specifications\nqmax = 23.5\n"
        "composition = Si\n\n#### start data\n#S 1\n#L r($\\AA$)  G($\\AA^{-2}$)\n"
        + "".join(f"{x:.2f} {np.sin(x):.5f}\n" for x in np.arange(0, 10, 0.1))
    )
    curve = read_gr(path)
    assert curve.qmax == 23.5 and curve.metadata["composition"] == "Si"


def test_header_value_ignores_case_and_comment_marks():
    assert header_value({"# Qmax": 21.0}, "qmax") == 21.0
    assert header_value({"QMAX": 1}, "qmax") == 1
    assert header_value({}, "qmax") is None


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "file is empty"),
        (b"# only a header\nqmax = 25\n", "no block of numeric data"),
        (b"1\n2\n3\n4\n", "1 column"),
        (b"\x00\x9f\x92\x96 binary", "binary file"),
    ],
)
def test_bad_files_raise_read_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.gr"
    path.write_bytes(content)
    with pytest.raises(ReadError, match=problem) as info:
        read_gr(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ReadError, match="no such file"):
        read_gr(tmp_path / "nope.gr")
    with pytest.raises(ReadError, match="is a directory"):
        read_gr(tmp_path)


@pytest.mark.parametrize("name", ["Ni", "Si", "CdSe-nanoparticle"])
def test_identical_to_diffpy_utils_on_every_real_file(data_dir, name):
    from diffpy.utils.parsers import load_data

    from sgmine.gr import clean_header

    path = data_dir / f"{name}.gr"
    curve = read_gr(path)
    data = load_data(path)
    np.testing.assert_array_equal(curve.r, data[:, 0])
    np.testing.assert_array_equal(curve.g, data[:, 1])
    assert curve.metadata == clean_header(load_data(path, headers=True))
    assert curve.warnings == []


def test_numpy_unparseable_rows_fall_back_to_diffpy(tmp_path):
    # Python's float() reads "1_0.5" but numpy's parser does not: the fallback (diffpy.utils)
    # then decides, and its failure is reported as a ReadError naming the file.
    path = tmp_path / "underscores.gr"
    path.write_text("".join(f"{i}_0.5 {i}\n" for i in range(20)))
    with pytest.raises(ReadError, match="cannot parse the data block"):
        read_gr(path)


def _all_example_files():
    from pathlib import Path

    root = Path(__file__).parent
    return sorted((root.parent / "examples" / "data").glob("*.gr")) + sorted((root / "data" / "bad").glob("*.gr"))


@pytest.mark.parametrize("path", _all_example_files(), ids=lambda p: p.name)
def test_windowed_read_resamples_identically(path):
    """Reading only the rows around the grid gives exactly the grid values of a full read."""
    from sgmine.grid import Grid, GridError, resample

    grid = Grid()
    outcomes = []
    for r_range in (None, (grid.rmin, grid.rmax)):
        try:
            curve = read_gr(path, r_range=r_range)
            outcomes.append(resample(curve.r, curve.g, grid).values)
        except (ReadError, GridError) as exc:
            outcomes.append(type(exc).__name__)
    if isinstance(outcomes[0], str):
        assert outcomes[1] == outcomes[0]
    else:
        np.testing.assert_array_equal(outcomes[1], outcomes[0])


def test_windowed_read_parses_only_the_rows_it_needs(data_dir):
    full = read_gr(data_dir / "Ni.gr")
    window = read_gr(data_dir / "Ni.gr", r_range=(1.5, 30.0))
    assert window.r[0] < 1.5 < 30.0 < window.r[-1]
    assert window.r.size < full.r.size // 2 + 10
    assert window.metadata == full.metadata


def test_windowed_read_does_not_parse_the_whole_block(data_dir, monkeypatch):
    """The measured examples take the fast path: bisection over the text, only the window parsed."""
    from sgmine import gr

    def whole_block(*args, **kwargs):
        raise AssertionError("the whole data block was parsed")

    monkeypatch.setattr(gr, "_parse_block", whole_block)
    for name in ("Ni.gr", "Si.gr", "CdSe-nanoparticle.gr"):
        curve = read_gr(data_dir / name, r_range=(1.5, 30.0))
        assert curve.r[0] < 1.5 < 30.0 < curve.r[-1] and curve.r.size < 3100
    with pytest.raises(AssertionError):  # a full read does parse it
        read_gr(data_dir / "Ni.gr")


@pytest.mark.parametrize("junk", ["x y", "", "# note", "1.0"])
def test_windowed_read_sees_a_block_that_ends_before_the_window(tmp_path, junk):
    """A line that ends the data block before the grid's range ends it for a windowed read too."""
    from sgmine.grid import Grid, GridError, resample

    rows = [f"{i * 0.01:.4f} {np.sin(i * 0.05):.5f}" for i in range(4000)]
    rows[20] = junk
    path = tmp_path / "junk.gr"
    path.write_text("\n".join(rows) + "\n")
    outcomes = []
    for r_range in (None, (1.5, 30.0)):
        try:
            curve = read_gr(path, r_range=r_range)
            outcomes.append(resample(curve.r, curve.g, Grid()).values)
        except GridError as exc:
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str):
        assert outcomes[1] == outcomes[0]
    else:
        np.testing.assert_array_equal(outcomes[1], outcomes[0])
