"""The dataset files: our writer, the reference format, and clear errors for broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sgmine.gr import read_gr
from sgmine.grid import Grid, resample
from training.datafiles import DatasetError, read_dataset, write_dataset


@pytest.fixture(scope="module")
def measured(data_dir):
    """The three measured curves of examples/data on the model grid, labelled 225 / 227 / 186 (CdSe)."""
    rows, labels = [], []
    for name, group in (("Ni.gr", 225), ("Si.gr", 227), ("CdSe-nanoparticle.gr", 186)):
        curve = read_gr(data_dir / name)
        rows.append(resample(curve.r, curve.g, Grid()).values)
        labels.append(group)
    return np.array(rows), np.array(labels)


def _manifest(y):
    return [{"structure_id": f"s{i}", "source": "test", "space_group": int(g), "qmax": 25.0} for i, g in enumerate(y)]


def test_round_trip_through_all_files(tmp_path, measured):
    x, y = measured
    out = write_dataset(tmp_path / "ds", x, y, _manifest(y), {"description": "three measured curves", "seed": 3})
    names = {p.name for p in out.iterdir()}
    assert {"x.csv", "y.csv", "size_sg.csv", "manifest.csv", "dataset.npz", "dataset.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]

    data = read_dataset(out)  # from dataset.npz
    assert data.x.dtype == np.float32 and data.x.shape == (3, 209)
    np.testing.assert_array_equal(data.x, x.astype(np.float32))
    assert data.y.tolist() == [225, 227, 186]
    assert data.classes == (186, 225, 227)
    assert data.groups.tolist() == ["s0", "s1", "s2"]
    assert data.description == "three measured curves"
    assert data.info["seed"] == 3
    assert data.grid == Grid()

    (out / "dataset.npz").unlink()  # now from the CSV files, which must carry the same numbers
    again = read_dataset(out)
    np.testing.assert_array_equal(again.x, data.x)
    assert again.y.tolist() == data.y.tolist() and again.classes == data.classes
    assert again.groups.tolist() == ["s0", "s1", "s2"]
    assert again.manifest[0]["qmax"] == "25.0"

    assert (out / "size_sg.csv").read_text() == "group,count\n186,1\n225,1\n227,1\n"
    assert len((out / "x.csv").read_text().splitlines()[0].split(",")) == 209
    assert json.loads((out / "dataset.json").read_text())["counts"] == {"186": 1, "225": 1, "227": 1}


def test_reads_the_reference_layout(tmp_path, measured):
    """x.csv / y.csv and a header-less size_sg.csv, as the original spacegroupMining files."""
    x, y = measured
    x = np.repeat(x, [2, 1, 3], axis=0)
    y = np.repeat(y, [2, 1, 3])
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")
    (tmp_path / "size_sg.csv").write_text("186,3\n225,2\n227,1\n")
    data = read_dataset(tmp_path)
    assert data.groups is None and data.manifest is None
    assert data.classes == (186, 225, 227)
    assert data.class_counts() == {186: 3, 225: 2, 227: 1}
    np.testing.assert_allclose(data.x, x, rtol=1e-6)


def test_size_sg_may_list_a_class_without_rows(tmp_path, measured):
    x, y = measured
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")
    (tmp_path / "size_sg.csv").write_text("group,count\n2,0\n186,1\n225,1\n227,1\n")
    data = read_dataset(tmp_path)
    assert data.classes == (2, 186, 225, 227)
    assert data.class_counts()[2] == 0


def test_size_sg_counts_must_match_y(tmp_path, measured):
    x, y = measured
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")
    (tmp_path / "size_sg.csv").write_text("group,count\n186,1\n225,5\n227,1\n")
    with pytest.raises(DatasetError, match=r"size_sg.csv.*group 225: 5 listed, 1 in y.csv"):
        read_dataset(tmp_path)


def test_labels_outside_size_sg_are_an_error(tmp_path, measured):
    x, y = measured
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")
    (tmp_path / "size_sg.csv").write_text("225,1\n227,1\n")
    with pytest.raises(DatasetError, match=r"labels \[186\] are not among the classes"):
        read_dataset(tmp_path)


def test_errors_name_the_file(tmp_path, measured):
    x, y = measured
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no x.csv"):
        read_dataset(tmp_path / "empty")
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    (tmp_path / "y.csv").write_text("225\n227\n")
    with pytest.raises(DatasetError, match="one label per row"):
        read_dataset(tmp_path)
    (tmp_path / "y.csv").write_text("225\nabc\n186\n")
    with pytest.raises(DatasetError, match="y.csv"):
        read_dataset(tmp_path)


def test_writer_validates(tmp_path, measured):
    x, y = measured
    with pytest.raises(DatasetError, match="one label per row"):
        write_dataset(tmp_path, x, y[:2], None, {})
    with pytest.raises(DatasetError, match="1–230"):
        write_dataset(tmp_path, x, np.array([0, 225, 227]), None, {})
    bad = x.copy()
    bad[0, 3] = np.nan
    with pytest.raises(DatasetError, match="NaN"):
        write_dataset(tmp_path, bad, y, None, {})
    wrong = _manifest(y)
    wrong[1]["space_group"] = 2
    with pytest.raises(DatasetError, match="manifest row 1 says space group 2"):
        write_dataset(tmp_path, x, y, wrong, {})
    with pytest.raises(DatasetError, match="manifest has 2 rows"):
        write_dataset(tmp_path, x, y, _manifest(y)[:2], {})


def test_npz_file_directly(tmp_path, measured):
    x, y = measured
    write_dataset(tmp_path, x, y, None, {"description": "no manifest"})
    data = read_dataset(tmp_path / "dataset.npz")
    assert data.groups is None  # no structure ids were written
    assert data.description == "no manifest"
    with pytest.raises(DatasetError, match="give a dataset directory or a .npz"):
        read_dataset(tmp_path / "x.csv")
