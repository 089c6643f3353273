"""The Python API: sgmine.predict on paths and arrays, in order, with error predictions."""

import subprocess
import sys

import numpy as np
import pytest

from sgmine import predict
from sgmine.gr import read_gr
from sgmine.scan import expand_paths


def test_measured_ni_and_si_land_on_their_templates(data_dir, template_model):
    preds = predict([data_dir / "Ni.gr", data_dir / "Si.gr"], top_k=3, model=template_model)
    assert [p.status for p in preds] == ["ok", "ok"]
    assert (preds[0].best.space_group, preds[0].best.symbol) == (225, "Fm-3m")
    assert (preds[1].best.space_group, preds[1].best.symbol) == (227, "Fd-3m")
    for p in preds:
        probs = [c.probability for c in p.candidates]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    assert preds[0].qmax == 25.0 and preds[0].metadata["composition"] == "Ni"


def test_arrays_and_paths_mixed_in_input_order(data_dir, template_model):
    si = read_gr(data_dir / "Si.gr")
    items = [(si.r, si.g), str(data_dir / "Ni.gr"), (np.arange(3.0), np.arange(3.0))]
    preds = predict(items, top_k=8, model=template_model)
    assert [p.status for p in preds] == ["ok", "ok", "error"]
    assert preds[0].source == "<array 0>" and preds[0].best.space_group == 227
    assert sum(c.probability for c in preds[0].candidates) == pytest.approx(1.0, abs=1e-5)
    assert preds[2].message == "only 1 measured point within 1.5–30 Å (need at least 5)"
    assert preds[2].candidates == [] and preds[2].best is None


def test_single_path_and_top_k_beyond_classes(data_dir, template_model):
    preds = predict(data_dir / "Ni.gr", top_k=50, model=template_model)
    assert len(preds) == 1 and len(preds[0].candidates) == 8


def test_bad_items_are_error_predictions(tmp_path, template_model):
    flat = tmp_path / "flat.gr"
    np.savetxt(flat, np.column_stack([np.linspace(0, 40, 100), np.ones(100)]))
    preds = predict([tmp_path / "missing.gr", flat, 42, tmp_path], model=template_model)
    assert [p.status for p in preds] == ["error"] * 4
    assert "no such file" in preds[0].message
    assert str(flat) not in preds[1].message and "no variation" in preds[1].message
    assert "(r, G) pair" in preds[2].message
    assert "directory" in preds[3].message


def test_partial_range_is_scored_with_warning(data_dir, template_model):
    ni = read_gr(data_dir / "Ni.gr")
    short = ni.r <= 18.0
    (pred,) = predict([(ni.r[short], ni.g[short])], model=template_model)
    assert pred.ok and pred.r_max == pytest.approx(18.0)
    assert "grid points set to zero" in pred.warnings[0]


def test_invalid_top_k(data_dir, template_model):
    with pytest.raises(ValueError, match="top_k"):
        predict([data_dir / "Ni.gr"], top_k=0, model=template_model)


def test_expand_paths(tmp_path, data_dir):
    (tmp_path / "b.gr").write_text("x")
    (tmp_path / "a.gr").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.gr").mkdir()
    got = expand_paths([str(tmp_path), str(tmp_path / "*.txt"), "no/such/*.gr", str(data_dir / "Ni.gr")])
    assert got == [
        str(tmp_path / "a.gr"), str(tmp_path / "b.gr"), str(tmp_path / "notes.txt"),
        "no/such/*.gr", str(data_dir / "Ni.gr"),
    ]


def test_predict_does_not_import_tensorflow(data_dir, template_model):
    code = (
        "import sys, sgmine\n"
        f"p = sgmine.predict([{str(data_dir / 'Ni.gr')!r}], model={str(template_model)!r})\n"
        "assert p[0].ok, p[0].message\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch')]\n"
        "assert not bad, bad\n"
        "print(p[0].best.space_group)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "225"


def test_confidence_and_in_domain_follow_the_models_threshold(tmp_path, data_dir, template_model):
    """confidence is the calibrated top-1 probability; in_domain compares it with the threshold
    the model file carries (and is unknown without one)."""
    import onnx

    from sgmine.model import ModelInfo, attach_metadata

    inputs = [data_dir / "Ni.gr", data_dir / "CdSe-nanoparticle.gr"]
    plain = predict(inputs, model=template_model, top_k=2)
    for p in plain:
        assert p.confidence == pytest.approx(p.candidates[0].probability) and p.in_domain is None
    high, low = sorted(p.confidence for p in plain)[::-1]
    assert high > low

    proto = onnx.load(str(template_model))
    info = ModelInfo.from_metadata({e.key: e.value for e in proto.metadata_props})
    info = ModelInfo(**{**info.__dict__, "in_domain_threshold": (high + low) / 2})
    del proto.metadata_props[:]
    attach_metadata(proto, info)
    flagged = tmp_path / "flagged.onnx"
    onnx.save(proto, str(flagged))

    scored = predict(inputs, model=flagged, top_k=2)
    assert [p.in_domain for p in scored] == [p.confidence >= (high + low) / 2 for p in plain]
    assert sorted(p.in_domain for p in scored) == [False, True]
    (bad,) = predict([tmp_path / "missing.gr"], model=flagged)
    assert bad.confidence is None and bad.in_domain is None


@pytest.mark.parametrize("batch_size", [1, 5, 32, 33, 256])
def test_batching_changes_nothing_but_the_pace(data_dir, template_model, batch_size):
    """However items fall into batches (the first one small, the rest batch_size), every item
    gets the same prediction, in order, and progress counts every item once."""
    from sgmine.scan import FIRST_BATCH, iter_predictions, load_model

    ni, si = read_gr(data_dir / "Ni.gr"), read_gr(data_dir / "Si.gr")
    rng = np.random.default_rng(1)
    items = []
    for i in range(FIRST_BATCH + 45):
        curve = (ni, si)[i % 2]
        items.append((curve.r, curve.g + rng.normal(0, 0.02, curve.g.size)) if i % 7 else "missing.gr")
    model = load_model(template_model)
    reference = list(iter_predictions(items, model, batch_size=len(items)))
    seen = []
    got = list(iter_predictions(items, model, batch_size=batch_size, on_progress=seen.append))
    assert sum(seen) == len(items) and seen[0] == min(batch_size, FIRST_BATCH, len(items))
    assert [p.status for p in got] == [p.status for p in reference]
    for a, b in zip(got, reference):
        assert [c.space_group for c in a.candidates] == [c.space_group for c in b.candidates]
        np.testing.assert_allclose([c.probability for c in a.candidates], [c.probability for c in b.candidates],
                                   atol=1e-6)


def test_an_array_of_rows_with_more_columns_is_one_curve(tmp_path, data_dir, template_model):
    """``predict(np.loadtxt(f))`` on an r, G, dr, dG file is one curve (r and G the first two
    columns), as its (r, G) pair is; it used to give one error row per data row."""
    ni = read_gr(data_dir / "Ni.gr")
    path = tmp_path / "four_columns.gr"
    np.savetxt(path, np.column_stack([ni.r, ni.g, np.full_like(ni.r, 0.01), np.full_like(ni.r, 0.002)]))
    (rows,) = predict(np.loadtxt(path), top_k=8, model=template_model)
    (pair,) = predict((ni.r, ni.g), top_k=8, model=template_model)
    assert rows.ok and [(c.space_group, c.probability) for c in rows.candidates] == [
        (c.space_group, c.probability) for c in pair.candidates]
    (columns,) = predict(np.loadtxt(path)[:, :2].T, top_k=8, model=template_model)  # 2×N: r and G as rows
    assert columns.candidates == pair.candidates
    (one,) = predict(ni.g[:, None], model=template_model)
    assert one.status == "error" and "6001×1 array is not a curve" in one.message
