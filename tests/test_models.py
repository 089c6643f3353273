"""Shipped models by name (issue #16): the registry is the package's data folder, `--model NAME`
and `model="NAME"` resolve through one function, `sgmine models` lists what is there."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest
from conftest import DATA
from onnx_builder import build_model
from typer.testing import CliRunner

from sgmine import models, predict
from sgmine.cli import app
from sgmine.model import Model, ModelError, int8_model_path, read_model_info
from sgmine.scan import _cached_model

runner = CliRunner()
SHIPPED = Path(models.__file__).parent / "data" / "model.onnx"
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason="no model shipped in this checkout")
SG45 = SHIPPED.with_name("sg45.onnx")
needs_sg45 = pytest.mark.skipif(not SG45.is_file(), reason="sg45 is not shipped in this checkout")
#: spacegroupMining's output order, which issue #16 asks sg45 to keep.
SG45_ORDER = [2, 4, 9, 11, 12, 13, 14, 15, 19, 33, 36, 47, 55, 58, 60, 61, 62, 63, 64, 65, 71, 87, 88, 122, 123,
              129, 136, 139, 140, 141, 148, 160, 164, 166, 167, 176, 186, 191, 194, 205, 216, 221, 225, 227, 230]

# A second model's classes: none of them is one of sg8's, so a listing that came from a
# hard-coded table instead of the files could not show them.
OTHER_CLASSES = [1, 47, 123, 221, 229]
OTHER_SYMBOLS = ["P1", "Pmmm", "P4/mmm", "Pm-3m", "Im-3m"]


def _onnxruntime_metadata(path: Path) -> dict[str, str]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


@pytest.fixture
def package_data(tmp_path, monkeypatch):
    """A package-data-like folder standing in for sgmine/data: the real sg8 (model.onnx and its
    card), a second model `sgtest5` with its card, and an INT8 sibling that is not a name."""
    folder = tmp_path / "data"
    folder.mkdir()
    if SHIPPED.is_file():
        (folder / "model.onnx").symlink_to(SHIPPED)
        shutil.copy(SHIPPED.with_name("MODEL_CARD.md"), folder / "MODEL_CARD.md")
    build_model(folder / "sgtest5.onnx", OTHER_CLASSES, OTHER_SYMBOLS, model_version="test-5sg-0.1",
                training_data="five random classes (tests only)")
    (folder / "sgtest5.md").write_text("# Model card: sgtest5\n")
    (folder / "sgtest5.int8.onnx").write_bytes(b"not listed: INT8 files belong to their float32 model")
    monkeypatch.setattr(models, "DATA_DIR", folder)
    _cached_model.cache_clear()
    yield folder
    _cached_model.cache_clear()


# --- resolution ------------------------------------------------------------------------------


@needs_shipped
def test_sg8_is_the_shipped_default():
    assert models.resolve_model("sg8") == SHIPPED
    assert models.resolve_model(None) == SHIPPED
    assert models.default_model_path() == SHIPPED
    assert int8_model_path("sg8") == SHIPPED.with_name("model.int8.onnx")
    shipped = models.shipped_models()
    assert list(shipped)[0] == "sg8" and shipped["sg8"].default
    assert shipped["sg8"].path == SHIPPED and shipped["sg8"].card == SHIPPED.with_name("MODEL_CARD.md")
    model = Model("sg8")
    assert model.path == SHIPPED
    assert model.info == read_model_info(SHIPPED) and model.name == "sg8"
    assert len(model.info.classes) == 8


def test_a_path_stays_a_path(tmp_path, template_model):
    assert models.resolve_model(str(template_model)) == template_model
    assert models.resolve_model(template_model) == template_model
    # a file that happens to be called like a shipped model is a path when given with its folder
    assert models.resolve_model(str(tmp_path / "sg8")) == tmp_path / "sg8"
    assert models.resolve_model("SG8") == Path("SG8")  # names are exact
    assert Model(str(template_model)).info.model_version == "test-template"


def test_unknown_name_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError) as err:
        Model("sg999")
    message = str(err.value)
    assert "sg999 does not exist" in message and "sgmine models" in message and "\n" not in message
    for name in models.shipped_models():
        assert name in message
    result = runner.invoke(app, ["scan", str(DATA / "Ni.gr"), "--model", "sg999"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sgmine: error: model file sg999 does not exist")
    assert result.stdout == ""


# --- the registry is the folder --------------------------------------------------------------


def test_registry_lists_the_files_in_the_folder(package_data):
    shipped = models.shipped_models()
    expected = (["sg8"] if SHIPPED.is_file() else []) + ["sgtest5"]
    assert list(shipped) == expected  # the default first; the INT8 sibling is no name
    other = shipped["sgtest5"]
    assert other.path == package_data / "sgtest5.onnx" and other.card == package_data / "sgtest5.md"
    assert not other.default
    assert read_model_info(other.path).classes == tuple(OTHER_CLASSES)
    assert models.resolve_model("sgtest5") == package_data / "sgtest5.onnx"
    assert int8_model_path("sgtest5") == package_data / "sgtest5.int8.onnx"


def test_a_second_model_is_listed_and_usable_by_name(package_data):
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    other = entries["sgtest5"]
    assert other["version"] == "test-5sg-0.1" and other["n_classes"] == 5 and other["default"] is False
    assert [(g["number"], g["symbol"]) for g in other["space_groups"]] == list(zip(OTHER_CLASSES, OTHER_SYMBOLS))
    assert other["description"] == "five random classes (tests only)"
    assert other["size_bytes"] == (package_data / "sgtest5.onnx").stat().st_size
    assert other["card"] == str(package_data / "sgtest5.md")

    text = runner.invoke(app, ["models"]).stdout
    assert "sgtest5  version test-5sg-0.1, 5 space groups" in text and "Im-3m (229)" in text

    info = runner.invoke(app, ["info", "--model", "sgtest5"])
    assert info.exit_code == 0, info.output
    assert info.stdout.startswith("name:           sgtest5 (shipped)\n")
    assert "229  Im-3m" in info.stdout

    prediction = predict(DATA / "Ni.gr", top_k=5, model="sgtest5")[0]
    assert prediction.ok and {c.space_group for c in prediction.candidates} == set(OTHER_CLASSES)
    scan = runner.invoke(app, ["scan", str(DATA / "Ni.gr"), "-m", "sgtest5", "-k", "5"])
    assert scan.exit_code == 0, scan.output
    assert "Im-3m" in scan.stdout

    # a name that is not in the folder any more is no longer a name
    (package_data / "sgtest5.onnx").unlink()
    assert "sgtest5" not in models.shipped_models()
    with pytest.raises(ModelError, match="not the name of a shipped model"):
        Model("sgtest5")


def test_default_may_be_named_sg8_onnx(tmp_path, monkeypatch):
    """The other layout: sg8.onnx with sg8.md, no model.onnx, is still the default sg8."""
    build_model(tmp_path / "sg8.onnx", OTHER_CLASSES, OTHER_SYMBOLS, model_version="renamed")
    (tmp_path / "sg8.md").write_text("card")
    monkeypatch.setattr(models, "DATA_DIR", tmp_path)
    shipped = models.shipped_models()
    assert list(shipped) == ["sg8"] and shipped["sg8"].default and shipped["sg8"].card == tmp_path / "sg8.md"
    assert models.resolve_model(None) == tmp_path / "sg8.onnx"
    assert Model(None).info.model_version == "renamed"


def test_no_shipped_models(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "DATA_DIR", tmp_path / "missing")
    assert models.shipped_models() == {}
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "no models are shipped" in result.stdout
    with pytest.raises(ModelError, match="no model shipped with this install"):
        Model()
    with pytest.raises(ModelError, match=r"not the name of a shipped model \(none in this install"):
        Model("sg8")


# --- `sgmine models` and `sgmine info` on the real model -------------------------------------


@needs_shipped
def test_models_lists_sg8_from_its_metadata():
    meta = _onnxruntime_metadata(SHIPPED)
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    sg8 = json.loads(result.stdout)[0]
    assert sg8["name"] == "sg8" and sg8["default"] is True
    assert sg8["version"] == meta["model_version"]
    assert sg8["n_classes"] == 8
    assert [g["number"] for g in sg8["space_groups"]] == json.loads(meta["classes"])
    assert [g["symbol"] for g in sg8["space_groups"]] == json.loads(meta["symbols"])
    assert sg8["description"] == meta["training_data"]
    assert sg8["size_bytes"] == SHIPPED.stat().st_size
    text = runner.invoke(app, ["models"])
    assert text.exit_code == 0
    assert text.stdout.startswith(f"sg8 (default)  version {meta['model_version']}, 8 space groups, ")
    assert "Fm-3m (225)" in text.stdout and "MODEL_CARD.md" in text.stdout


@needs_shipped
def test_info_names_a_shipped_model(template_model):
    by_name = runner.invoke(app, ["info", "--model", "sg8"])
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout.startswith("name:           sg8 (shipped, default)\n")
    assert runner.invoke(app, ["info"]).stdout == by_name.stdout
    assert runner.invoke(app, ["info", "-m", str(SHIPPED)]).stdout == by_name.stdout
    by_path = runner.invoke(app, ["info", "--model", str(template_model)])
    assert by_path.exit_code == 0 and not by_path.stdout.startswith("name:")


@needs_shipped
def test_predict_by_name_is_the_default():
    by_name = predict(DATA / "Ni.gr", model="sg8")[0]
    default = predict(DATA / "Ni.gr")[0]
    assert by_name.candidates == default.candidates


@needs_sg45
def test_sg45_is_shipped_beside_the_default_in_spacegroupminings_order():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = {m["name"]: m for m in json.loads(result.stdout)}
    assert listed["sg8"]["default"] and not listed["sg45"]["default"]
    assert [g["number"] for g in listed["sg45"]["space_groups"]] == SG45_ORDER
    assert listed["sg45"]["card"] and Path(listed["sg45"]["card"]).name == "sg45.md"
    info = runner.invoke(app, ["info", "--model", "sg45"])
    assert info.exit_code == 0 and info.stdout.startswith("name:           sg45 (shipped)\n")


@needs_sg45
def test_scan_with_sg45_ranks_the_measured_examples(tmp_path):
    """The shipped sg45 on real measurements: its 45 outputs are read in the right order (Ni and
    Si have their true group among the top 6 of 45) and "none of these" is reported."""
    out = tmp_path / "sg45.csv"
    files = [str(DATA / "Ni.gr"), str(DATA / "Si.gr")]
    result = runner.invoke(app, ["scan", *files, "--model", "sg45", "--top-k", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row, truth in zip(rows, (225, 227)):
        assert row["status"] == "ok"
        top6 = [int(row[f"sg_{k}"]) for k in range(1, 7)]
        assert set(top6) <= set(SG45_ORDER) and truth in top6
        assert 0 <= float(row["none_of_these"]) < 1


@pytest.mark.parametrize("command", ["scan", "watch", "plot", "info"])
def test_model_help_names_the_choices(command):
    result = runner.invoke(app, [command, "--help"])
    assert "shipped model name (see `sgmine models`) or onnx file" in " ".join(result.stdout.split()).lower()


# --- reading metadata without loading the model ----------------------------------------------


@pytest.mark.parametrize("which", ["shipped", "template"])
def test_metadata_reader_agrees_with_onnxruntime(which, template_model):
    path = SHIPPED if which == "shipped" else template_model
    if not path.is_file():
        pytest.skip("no model shipped in this checkout")
    assert models.read_metadata(path) == _onnxruntime_metadata(path)


def test_unreadable_files_are_model_errors(tmp_path, template_model, monkeypatch):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    half = tmp_path / "half.onnx"
    half.write_bytes(template_model.read_bytes()[: template_model.stat().st_size // 2])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path, problem in [(junk, "not an ONNX file"), (half, "not an ONNX file"), (empty, "lacks classes")]:
        with pytest.raises(ModelError, match=problem):
            read_model_info(path)
    monkeypatch.setattr(models, "DATA_DIR", tmp_path)
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 1  # listed, each with its error
    assert {e["name"]: "error" in e for e in json.loads(result.stdout)} == {"empty": True, "half": True, "junk": True}


def test_the_registry_imports_no_other_sgmine_module():
    """sgmine.model builds on sgmine.models, never the other way round (they imported each other)."""
    import ast

    tree = ast.parse(Path(models.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name and name.split(".")[0] == "sgmine"}
