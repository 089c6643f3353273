"""``sgmine plot`` and ``sgmine scan --plot`` (issue #17): the picture's labels come from the data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.image
from conftest import CLASSES, SYMBOLS
from onnx_builder import build_model

from sgmine.model import Model
from sgmine.plot import (
    DPI,
    FIGSIZE,
    PlotError,
    Point,
    Series,
    build_series,
    figure,
    read_results,
)
from sgmine.scan import predict

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "examples" / "series"
PIXELS = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # rows, columns


def _sgmine(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgmine.cli", *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def series_dir(tmp_path) -> Path:
    """The shipped c/a series, under names whose natural order differs from the c/a order."""
    folder = tmp_path / "series"
    folder.mkdir()
    for i, path in enumerate(sorted(SERIES.glob("*.gr"), reverse=True)):
        shutil.copy(path, folder / f"run{i + 1}.gr")  # run1 = the largest c/a, ..., run10 = cubic
    return folder


def _class_labels(model: Model) -> list[str]:
    return [f"{sym} ({sg})" for sg, sym in sorted(zip(model.info.classes, model.info.symbols))]


def test_heatmap_labels_come_from_the_classes_and_the_headers(series_dir, template_model):
    model = Model(template_model)
    rows = predict(sorted(series_dir.glob("*.gr")), model=model, top_k=2)
    series = build_series(rows, model=model, order="header:c_over_a")
    ax = figure(series).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == _class_labels(model)
    ratios = [float(t.get_text()) for t in ax.get_xticklabels()]
    assert ratios == sorted(ratios) and len(ratios) == 10 and ratios[0] == 1.0
    assert "c_over_a" in ax.get_xlabel()
    # every class's probability, not only the table's top 2: rescored from the files
    image = ax.get_images()[0].get_array()
    assert image.shape == (len(model.info.classes), 10) and not np.ma.is_masked(image)
    np.testing.assert_allclose(image.sum(axis=0), 1.0, atol=1e-3)

    by_name = build_series(rows, model=model, order="name")
    assert [p.label for p in by_name.points] == [f"run{i}.gr" for i in range(1, 11)]  # run2 before run10


@pytest.mark.parametrize("key", ["temperature", "temp"])
def test_order_by_temperature_of_pdfgetn_and_pdfgetx2_headers(tmp_path, template_model, key):
    """PDFgetN writes ``temp=``, PDFgetX2 ``temperature=``: ``--order header:temperature`` and
    ``header:temp`` order a series of both by the temperature (real headers, Ni's rows)."""
    headers = ROOT / "tests" / "data" / "headers"
    rows = [line for line in (ROOT / "examples" / "data" / "Ni.gr").read_text().splitlines() if line[:1].isdigit()]
    pdfgetn = (headers / "pdfgetn_La0.925Ca0.075MnO3.txt").read_text()
    pdfgetx2 = (headers / "pdfgetx2_SrTiO3.txt").read_text()
    files = {"a.gr": pdfgetx2, "b.gr": pdfgetn.replace("temp=190 ", "temp=10 "), "c.gr": pdfgetn}
    for name, header in files.items():
        (tmp_path / name).write_text(header + "\n".join(rows) + "\n")
    model = Model(template_model)
    series = build_series(predict(sorted(tmp_path.glob("*.gr")), model=model), model=model, order=f"header:{key}")
    assert [Path(p.source).name for p in series.points] == ["b.gr", "c.gr", "a.gr"]
    assert [p.label for p in series.points] == ["10", "190", "300"] and not series.warnings


def test_out_of_domain_and_error_files_are_marked():
    classes, symbols = [225, 139], ["Fm-3m", "I4/mmm"]
    points = [
        Point("a.gr", "a.gr", "ok", True, np.array([0.9, 0.1])),
        Point("b.gr", "b.gr", "ok", False, np.array([0.5, 0.5])),
        Point("c.gr", "c.gr", "error", None, np.full(2, np.nan), "no block of numeric data found"),
    ]
    ax = figure(Series(points, classes, symbols, "file")).axes[0]
    colours = [t.get_color() for t in ax.get_xticklabels()]
    assert colours[1] == "tab:red" and colours[0] != "tab:red"
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("×") == 1 and texts.count("error") == 1
    assert "in_domain = false" in ax.get_title()


def test_plot_writes_a_png_of_the_expected_size(tmp_path, series_dir, template_model):
    table, picture = tmp_path / "series.csv", tmp_path / "series.png"
    scan = _sgmine("scan", series_dir, "--model", template_model, "--out", table)
    assert scan.returncode == 0, scan.stderr
    result = _sgmine("plot", table, "--out", picture, "--order", "header:c_over_a", "--model", template_model)
    assert result.returncode == 0, result.stderr
    assert "picture of 10 files" in result.stderr
    assert matplotlib.image.imread(picture).shape[:2] == PIXELS

    missing = _sgmine("plot", table, "--out", picture, "--order", "header:temperature", "--model", template_model)
    assert missing.returncode == 2 and "no file has 'temperature' in its header" in missing.stderr
    bad = _sgmine("plot", table, "--out", tmp_path / "x.txt", "--model", template_model)
    assert bad.returncode == 2 and ".png, .pdf or .svg" in bad.stderr


def test_one_file_shows_its_curve_on_the_model_grid_and_its_candidates(tmp_path, data_dir, template_model):
    model = Model(template_model)
    rows = predict([data_dir / "Ni.gr"], model=model, top_k=3)
    series = build_series(rows, model=model)
    left, right = figure(series).axes[:2]
    r, values = left.get_lines()[0].get_data()
    np.testing.assert_allclose(r, model.grid.r)
    assert values.min() == pytest.approx(0.0) and values.max() == pytest.approx(1.0)
    bars = [t.get_text() for t in right.get_yticklabels()]
    assert sorted(bars) == sorted(_class_labels(model))
    assert bars[0] == f"{rows[0].best.symbol} ({rows[0].best.space_group})"  # best first

    picture = tmp_path / "ni.png"
    result = _sgmine("scan", data_dir / "Ni.gr", "--model", template_model, "--plot", picture)
    assert result.returncode == 0, result.stderr
    assert matplotlib.image.imread(picture).shape[:2] == PIXELS


def test_a_table_of_another_model_is_refused(tmp_path, data_dir, template_model):
    """A JSON table names the model that wrote it: plotting it with another is one clear refusal
    (exit 2), not a warning per file; a table naming a group the model lacks (a CSV table too,
    which names no model) is refused the same way."""
    table = tmp_path / "t.json"
    assert _sgmine("scan", data_dir / "Ni.gr", data_dir / "Si.gr", "--model", template_model, "--out", table).returncode == 0
    assert json.loads(table.read_text())[0]["model"] == {"name": str(template_model), "version": "test-template"}
    other = build_model(tmp_path / "other.onnx", CLASSES, SYMBOLS, model_version="other-version")
    result = _sgmine("plot", table, "--out", tmp_path / "t.png", "--model", other)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (f"the table was written with model {template_model} (version test-template), not with {other} "
            f"(version other-version): plot it with --model {template_model}") in result.stderr
    assert not (tmp_path / "t.png").exists()

    rows = predict([data_dir / "Ni.gr"], model=template_model, top_k=3)
    for row in rows:
        row.model_version = ""  # as read from a CSV table
    two = Model(build_model(tmp_path / "two.onnx", [225, 227], ["Fm-3m", "Fd-3m"], model_version="test-template"))
    missing = sorted({c.space_group for c in rows[0].candidates} - {225, 227})[0]
    with pytest.raises(PlotError, match=f"names space group {missing}, which model .*two.onnx does not have"):
        build_series(rows, model=two)


@pytest.mark.skipif(not (ROOT / "sgmine" / "data" / "sg45.onnx").is_file(), reason="sg45 is not shipped here")
def test_an_sg8_table_plotted_with_sg45_is_refused(tmp_path, data_dir):
    """The issue's case: `plot --model sg45` on an sg8 JSON table printed 17 warnings, exit 0."""
    table = tmp_path / "t.json"
    assert _sgmine("scan", data_dir, "--model", "sg8", "--out", table).returncode == 0
    result = _sgmine("plot", table, "--out", tmp_path / "t.png", "--model", "sg45")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "the table was written with model sg8 (version " in result.stderr and "--model sg8" in result.stderr


def test_a_file_gone_is_drawn_from_the_table(tmp_path, data_dir, template_model):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.gr", "b.gr"):
        shutil.copy(data_dir / "Ni.gr", folder / name)
    table = tmp_path / "t.csv"
    assert _sgmine("scan", folder, "--model", template_model, "--out", table, "--top-k", "2").returncode == 0
    (folder / "b.gr").unlink()
    model = Model(template_model)
    series = build_series(read_results(table), model=model)
    assert any("cannot be read any more" in w for w in series.warnings)
    gone = series.points[1].probabilities
    assert np.isnan(gone).sum() == len(model.info.classes) - 2


def test_unknown_order_is_refused(template_model, data_dir):
    model = Model(template_model)
    with pytest.raises(PlotError, match="unknown order"):
        build_series(predict([data_dir / "Ni.gr"], model=model), model=model, order="temperature")
