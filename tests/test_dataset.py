"""Training-dataset builder: augmentation, simulation onto the runtime grid, shards, resume, Dask."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffpy.structure")
pytest.importorskip("spglib")

from sgmine.grid import Grid, resample  # noqa: E402
from training import dataset, structures  # noqa: E402
from training.dataset import (  # noqa: E402
    Augmentation,
    BuildError,
    augmentation_of,
    build_dataset,
    nominal_variant,
    sample_variants,
    simulate_variants,
    structure_rng,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"


def _cif_tasks():
    return structures.cif_directory(DATA)  # Ni (225) and Si (227), real files


def _tasks():
    pytest.importorskip("pyxtal")
    return _cif_tasks() + structures.synthetic_crystals(4, [14, 62], seed=4)  # every crystal placed in well under a second


def test_variants_are_seeded_and_within_the_documented_ranges():
    aug = Augmentation()
    a = sample_variants(structure_rng(7, "Ni"), 400, aug)
    b = sample_variants(structure_rng(7, "Ni"), 400, aug)
    c = sample_variants(structure_rng(8, "Ni"), 400, aug)
    assert a == b and a != c
    assert a[0] == nominal_variant() and a[0].radiation == "xray" and a[0].rmax == 30.0
    rest = a[1:]
    for name in ("qmax", "qdamp", "uiso", "delta2"):
        lo, hi = getattr(aug, name)
        values = np.array([getattr(v, name) for v in rest])
        assert values.min() >= lo and values.max() <= hi
    strains = np.array([v.strain for v in rest])
    assert np.abs(strains).max() <= 0.03 and strains.min() < -0.02 and strains.max() > 0.02
    rmax = np.array([v.rmax for v in rest])
    assert rmax.min() >= 15.0 and 0.35 < np.mean(rmax == 30.0) < 0.65
    neutron = np.mean([v.radiation == "neutron" for v in rest])
    assert 0.2 < neutron < 0.4
    diameters = np.array([v.particle_diameter for v in rest])
    bulk = diameters == 0
    assert 0.65 < bulk.mean() < 0.85 and diameters[~bulk].min() >= 20 and diameters[~bulk].max() <= 100
    with pytest.raises(ValueError):
        sample_variants(structure_rng(0, "x"), 0)


def test_rows_are_the_runtime_resampling_of_the_simulated_curve():
    from sgmine.simulate import PDFParams, pair_table, pdf, read_structure

    structure = read_structure(DATA / "Ni.cif")
    short = replace(nominal_variant(), rmax=18.0, strain=0.02, qmax=18.0, particle_diameter=40.0)
    variants = [nominal_variant(), short]
    rows, errors = simulate_variants(structure, variants, np.random.default_rng(0))
    assert errors == [None, None]
    table = pair_table(structure, rmax=30.0)
    for row, v in zip(rows, variants):
        r = np.arange(1.0, v.rmax + 1e-6, 0.01)
        params = PDFParams(qmax=v.qmax, qdamp=v.qdamp, uiso=v.uiso, delta2=v.delta2, spdiameter=v.particle_diameter)
        expected = resample(r, pdf(table, r, params, strain=v.strain), Grid()).values
        np.testing.assert_allclose(row, expected, atol=1e-9)
        assert row.min() == 0.0 and row.max() == 1.0
    # the short curve ends at 18 Å: the runtime's zero fill leaves one constant value beyond it
    tail = rows[1][Grid().r > 18.0]
    assert np.ptp(tail) == 0.0 and tail[0] > 0.0


def test_noise_changes_the_curve_by_about_its_level():
    from sgmine.simulate import read_structure

    structure = read_structure(DATA / "Si.cif")
    clean = nominal_variant()
    noisy = replace(clean, noise=0.02)
    rows, _ = simulate_variants(structure, [clean, noisy], np.random.default_rng(1))
    diff = rows[1] - rows[0]
    assert 0.005 < diff.std() < 0.05


def test_build_writes_the_reference_format_and_resumes(tmp_path):
    from training.datafiles import read_dataset

    tasks = _tasks()
    out = tmp_path / "ds"
    first = build_dataset(tasks, out, augment=3, seed=1, shard_size=2, progress=False, command="test")
    assert first.shards_built == 3 and first.shards_reused == 0
    assert first.n_structures == 6 and first.n_rows == 18
    assert first.counts == {14: 6, 62: 6, 225: 3, 227: 3}

    x = np.loadtxt(out / "x.csv", delimiter=",")
    y = np.loadtxt(out / "y.csv", dtype=int)
    assert x.shape == (18, 209) and y.shape == (18,)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.allclose(x.min(axis=1), 0.0) and np.allclose(x.max(axis=1), 1.0)
    assert (out / "size_sg.csv").read_text().splitlines() == ["group,count", "14,6", "62,6", "225,3", "227,3"]
    data = read_dataset(out)
    assert data.classes == (14, 62, 225, 227)
    np.testing.assert_array_equal(data.y, y)
    assert len(set(data.groups)) == 6
    assert data.manifest[0]["structure_id"] == "Ni" and data.manifest[0]["source"].startswith("cif:")
    assert {m["source"] for m in data.manifest} == {f"cif:{DATA / 'Ni.cif'}", f"cif:{DATA / 'Si.cif'}", "synthetic:pyxtal"}
    npz = read_dataset(out / "dataset.npz")
    np.testing.assert_allclose(npz.x, x, atol=1e-7)
    for m, label in zip(data.manifest, y):
        assert int(m["space_group"]) == label

    # the nominal Ni row is exactly the runtime's resampling of the simulated nominal curve
    from sgmine.simulate import PDFParams, pair_table, pdf, read_structure

    r = np.arange(1.0, 30.0 + 1e-6, 0.01)
    g = pdf(pair_table(read_structure(DATA / "Ni.cif"), rmax=30.0), r, PDFParams())
    np.testing.assert_allclose(x[0], resample(r, g, Grid()).values, atol=1e-7)

    again = build_dataset(tasks, out, augment=3, seed=1, shard_size=2, progress=False)
    assert again.shards_built == 0 and again.shards_reused == 3
    (out / "work" / "shard-00001.npz").unlink()
    resumed = build_dataset(tasks, out, augment=3, seed=1, shard_size=2, progress=False)
    assert resumed.shards_built == 1 and resumed.structures_built == 2
    np.testing.assert_array_equal(np.loadtxt(out / "x.csv", delimiter=","), x)

    with pytest.raises(BuildError, match="different build"):
        build_dataset(tasks, out, augment=4, seed=1, shard_size=2, progress=False)
    fresh = build_dataset(tasks, out, augment=2, seed=1, shard_size=2, progress=False, fresh=True)
    assert fresh.n_rows == 12 and fresh.shards_built == 3


def test_requested_groups_filter_cif_structures_and_skips_are_counted(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    shutil.copy(DATA / "Ni.cif", folder / "Ni.cif")
    shutil.copy(DATA / "Si.cif", folder / "Si.cif")
    (folder / "broken.cif").write_text("not a cif\n")
    summary = build_dataset(
        structures.cif_directory(folder), tmp_path / "ds", augment=2, space_groups=[225], progress=False
    )
    assert summary.counts == {225: 2}
    assert summary.skipped == {"space group not requested": 1, "unreadable or no symmetry": 1}
    skipped = (tmp_path / "ds" / "skipped.csv").read_text()
    assert "broken" in skipped and "spglib: 227" in skipped


def test_nothing_to_build_is_a_clear_error(tmp_path):
    with pytest.raises(BuildError, match="no structures"):
        build_dataset([], tmp_path / "ds", progress=False)
    with pytest.raises(BuildError, match="no PDFs"):
        build_dataset(_cif_tasks(), tmp_path / "ds2", space_groups=[2], progress=False)


@pytest.mark.slow
def test_process_pool_gives_the_same_rows_as_one_process(tmp_path):
    tasks = _tasks()
    one = build_dataset(tasks, tmp_path / "one", augment=2, shard_size=2, workers=1, progress=False)
    two = build_dataset(tasks, tmp_path / "two", augment=2, shard_size=3, workers=2, progress=False)
    assert one.n_rows == two.n_rows == 12
    np.testing.assert_array_equal(
        np.load(tmp_path / "one" / "dataset.npz")["x"], np.load(tmp_path / "two" / "dataset.npz")["x"]
    )


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    tasks = _cif_tasks()
    local = build_dataset(tasks, tmp_path / "local", augment=2, shard_size=1, progress=False)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        via_dask = build_dataset(tasks, tmp_path / "dask", augment=2, shard_size=1, scheduler=client, progress=False)
        by_address = build_dataset(
            tasks, tmp_path / "addr", augment=2, shard_size=1, scheduler=cluster.scheduler_address, progress=False
        )
    assert via_dask.shards_built == by_address.shards_built == 2
    for folder in ("dask", "addr"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "local" / "dataset.npz")["x"], np.load(tmp_path / folder / "dataset.npz")["x"]
        )
    assert local.counts == via_dask.counts == {225: 2, 227: 2}


def test_negative_scatterers_go_to_neutron_pdfs_only_and_are_drawn_last():
    """--negative-scatterers flags only neutron PDFs; at 0 every draw is the recipe's."""
    plain = sample_variants(structure_rng(3, "Ni"), 300, Augmentation.measured())
    off = sample_variants(structure_rng(3, "Ni"), 300, augmentation_of(realism=True))
    assert off == plain and not any(v.negative_scatterer for v in off)
    aug = augmentation_of(realism=True, neutron_probability=0.5, negative_scatterers=0.6)
    assert aug == replace(Augmentation.measured(), neutron_probability=0.5, negative_scatterer_probability=0.6)
    rest = sample_variants(structure_rng(3, "Ni"), 600, aug)[1:]
    neutron = [v for v in rest if v.radiation == "neutron"]
    flagged = [v for v in rest if v.negative_scatterer]
    assert 0.4 < len(neutron) / len(rest) < 0.6
    assert set(flagged) <= set(neutron) and 0.5 < len(flagged) / len(neutron) < 0.7


def test_dataset_command(tmp_path):
    from typer.testing import CliRunner

    from training.cli import app

    runner = CliRunner()
    out = tmp_path / "ds"
    args = ["dataset", "--cif-dir", str(DATA), "--augment", "2", "--workers", "1", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 4 PDFs of 2 structures" in _flat(result.output)
    assert (out / "x.csv").exists() and (out / "manifest.csv").exists() and (out / "dataset.npz").exists()
    assert "225: 2, 227: 2" in _flat(result.output)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "reusing the complete build" in _flat(again.output)

    missing = runner.invoke(app, ["dataset", "--cif-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "not a folder" in _flat(missing.output)
    bad = runner.invoke(app, ["dataset", "--synthetic", "3", "--space-groups", "2,abc", "--out", str(tmp_path / "y")])
    assert bad.exit_code != 0
    nothing = runner.invoke(app, ["dataset", "--out", str(tmp_path / "z")])
    assert nothing.exit_code == 1 and "no structures" in _flat(nothing.output)


def test_dataset_command_with_neutron_and_particle_options_writes_them_to_the_manifest(tmp_path):
    from typer.testing import CliRunner

    from training.cli import app
    from training.datafiles import read_dataset

    out = tmp_path / "ds"
    args = ["dataset", "--cif-dir", str(DATA), "--augment", "4", "--workers", "1", "--neutron-probability", "1",
            "--negative-scatterers", "1", "--particle-probability", "1", "--particle-diameter", "10,14", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = read_dataset(out).manifest
    neutron = [r for r in rows if r["radiation"] == "neutron"]
    assert len(rows) == 8 and len(neutron) == 6  # after Ni's and Si's nominal X-ray PDF, three neutron ones each
    assert all(r["negative_scatterer"] == "True" and 10 <= float(r["particle_diameter"]) <= 14 for r in neutron)
    runner = CliRunner()
    for option, value in (("--negative-scatterers", "1.5"), ("--particle-diameter", "40,10"), ("--particle-diameter", "ten")):
        bad = runner.invoke(app, args[:-2] + [option, value, "--out", str(tmp_path / "b")])
        assert bad.exit_code != 0, (option, value)
    assert "0 < LOW <= HIGH" in _flat(runner.invoke(app, args[:-2] + ["--particle-diameter", "40,10", "--out",
                                                                      str(tmp_path / "c")]).output)


def test_grid_option_puts_every_row_on_that_grid_and_says_so(tmp_path):
    """--grid RMIN,RMAX,NPOINTS: rows of NPOINTS values, each the runtime's resampling onto that grid
    (the nominal Ni row checked against the simulator), and the grid in dataset.json."""
    from typer.testing import CliRunner

    from sgmine.simulate import PDFParams, pair_table, pdf, read_structure
    from training.cli import app
    from training.datafiles import read_dataset

    out = tmp_path / "ds"
    args = ["dataset", "--cif-dir", str(DATA), "--augment", "2", "--workers", "1", "--grid", "1.5, 20, 371"]
    result = CliRunner().invoke(app, args + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    data = read_dataset(out)
    grid = Grid(rmin=1.5, rmax=20.0, npoints=371)
    assert data.grid == grid and data.x.shape == (4, 371)
    nominal = nominal_variant()
    r = np.arange(1.0, nominal.rmax + 1e-6, 0.01)
    params = PDFParams(qmax=nominal.qmax, qdamp=nominal.qdamp, uiso=nominal.uiso, delta2=nominal.delta2)
    g = pdf(pair_table(read_structure(DATA / "Ni.cif"), rmax=30.0), r, params, strain=nominal.strain)
    ni = [i for i, row in enumerate(data.manifest) if row["variant"] == "0" and "Ni" in row["source"]]
    np.testing.assert_allclose(data.x[ni[0]], resample(r, g, grid).values, atol=1e-6)
    for bad in ("1.5,30", "30,1.5,209", "1.5,30,1", "a,b,c"):
        refused = CliRunner().invoke(app, args[:-2] + ["--grid", bad, "--out", str(tmp_path / "bad")])
        assert refused.exit_code != 0 and "RMIN,RMAX,NPOINTS" in _flat(refused.output), bad


def _flat(text: str) -> str:
    """The output with rich's line wrapping (terminal width) undone."""
    return " ".join(text.split())


def test_variants_and_realism_reach_the_manifest_and_keep_one_split_group(tmp_path):
    """--variants 2 --realism on Ni and Si: three structures each, one split group per compound,
    realism draws within their ranges, every curve on the grid."""
    from training.datafiles import read_dataset

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    tasks = structures.cif_directory(examples)
    aug = dataset.Augmentation.measured()
    summary = dataset.build_dataset(tasks, tmp_path / "ds", augment=6, seed=2, workers=1, progress=False,
                                    variants=2, augmentation=aug)
    assert summary.n_structures == 6
    data = read_dataset(tmp_path / "ds")
    rows = data.manifest
    assert {r["variant"] for r in rows} == {"0", "1", "2"}
    assert set(data.groups) == {"Ni|225", "Si|227"}
    qmins = [float(r["qmin"]) for r in rows if float(r["qmin"]) > 0]
    steps = [float(r["step"]) for r in rows if float(r["step"]) != dataset.R_STEP]
    assert qmins and all(aug.qmin[0] <= q <= aug.qmin[1] for q in qmins)
    assert steps and all(aug.step[0] <= s <= aug.step[1] for s in steps)
    assert any(r["substituted"] == "True" for r in rows)
    assert np.isfinite(data.x).all() and data.x.min() >= 0 and data.x.max() <= 1


def test_a_synthetic_crystal_that_raises_is_recorded_as_synthetic_failed(tmp_path, monkeypatch):
    """Any error while building a synthetic crystal (here the cell draw giving up) is a failed
    synthetic crystal in skipped.csv, never an unreadable file; the other crystals are built."""
    from training import wyckoff

    calls = {"n": 0}
    real = wyckoff.random_cell

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("no cubic cell found")
        return real(*args, **kwargs)

    monkeypatch.setattr(wyckoff, "random_cell", flaky)
    tasks = structures.synthetic_crystals(3, [225], seed=4, placement="wyckoff")
    summary = build_dataset(tasks, tmp_path / "ds", augment=1, progress=False, workers=1)
    assert summary.skipped == {"synthetic failed": 1}
    assert "ValueError: no cubic cell found" in (tmp_path / "ds" / "skipped.csv").read_text()
    assert sum(summary.counts.values()) == 2


def test_scaled_structure_stretches_every_distance():
    ni = structures.cif_directory(DATA)[0].load().structure
    bigger = dataset.scaled_structure(ni, 1.25)
    assert bigger.lattice.a == pytest.approx(ni.lattice.a * 1.25)
    assert bigger.distance(0, 1) == pytest.approx(ni.distance(0, 1) * 1.25)
    assert ni.lattice.a == pytest.approx(3.52, abs=0.01)  # the original is untouched


def test_scale_stretches_each_structure_and_the_manifest_says_by_how_much(tmp_path):
    """--scale 0.7,1.4: every curve's first peak sits at the structure's nearest-neighbour
    distance times the stretch the manifest records (Ni 2.49 Å, Si 2.35 Å), and that stretch
    is within the range (times the ±3 % strain)."""
    from training.datafiles import read_dataset

    tasks = structures.cif_directory(DATA)
    build_dataset(tasks, tmp_path / "ds", augment=3, seed=5, workers=1, progress=False, scale=(0.7, 1.4))
    data = read_dataset(tmp_path / "ds")
    r = Grid().r
    step = r[1] - r[0]
    nearest = {"Ni": 2.49, "Si": 2.35}
    stretches = []
    for row, m in zip(data.x, data.manifest):
        stretch = 1.0 + float(m["strain"])
        stretches.append(stretch)
        assert 0.7 * 0.97 - 1e-6 <= stretch <= 1.4 * 1.03 + 1e-6
        first = r[int(np.argmax(row[: int((nearest[m["formula"]] * stretch + 0.6 - r[0]) / step)]))]
        assert first == pytest.approx(nearest[m["formula"]] * stretch, abs=0.2)
    assert max(stretches) - min(stretches) > 0.1  # the structures were really stretched differently
    with pytest.raises(dataset.BuildError, match="--scale"):
        build_dataset(tasks, tmp_path / "bad", augment=1, workers=1, progress=False, scale=(0.3, 1.4))


def test_prototype_kinds_default_to_the_element_prototypes_and_are_checked():
    """Without --prototype-kinds a dataset gets the five element prototypes it always got (so
    the documented commands rebuild the same data); the layer prototypes only when named."""
    import typer

    from training.structures import ELEMENT_PROTOTYPES

    assert dataset.parse_prototype_kinds(None) == ELEMENT_PROTOTYPES
    assert dataset.parse_prototype_kinds("graphite, lonsdaleite") == ("graphite", "lonsdaleite")
    with pytest.raises(typer.BadParameter, match="unknown prototype"):
        dataset.parse_prototype_kinds("graphite,bct")


def test_the_cache_reuses_a_complete_build_and_resumes_a_partial_one(tmp_path, monkeypatch):
    """Without --out, a build goes to $SGMINE_CACHE/datasets/KEY; the same command then reuses it,
    resumes it when interrupted, and another seed or another input table gets another folder."""
    import json

    from typer.testing import CliRunner

    from training.cli import app

    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    args = ["dataset", "--cif-dir", str(DATA), "--augment", "2", "--workers", "1", "--shard-size", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "cache" / "datasets").iterdir()
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["cache"]["key"] == folder.name and len(meta["cache"]["code"]) == 16
    assert sorted(meta["cache"]["inputs"]) == ["cif_dir/Ni.cif", "cif_dir/Si.cif"]
    assert "2 shards built, 0 reused" in _flat(first.output)

    written = (folder / "dataset.npz").stat().st_mtime_ns
    again = runner.invoke(app, args + ["--workers", "2"])  # how fast it is built is not part of the key
    assert again.exit_code == 0 and f"(key {folder.name}): nothing to simulate" in _flat(again.output)
    assert (folder / "dataset.npz").stat().st_mtime_ns == written

    (folder / "dataset.json").unlink()  # interrupted after one shard
    (folder / "work" / "shard-00001.npz").unlink()
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0 and "1 shards built, 1 reused" in _flat(resumed.output)
    assert json.loads((folder / "dataset.json").read_text())["cache"]["key"] == folder.name

    other_seed = runner.invoke(app, args + ["--seed", "4"])
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    shutil.copy(DATA / "Ni.cif", cifs / "Ni.cif")
    shutil.copy(DATA / "Si.cif", cifs / "Si.cif")
    moved = runner.invoke(app, ["dataset", "--cif-dir", str(cifs), *args[3:]])  # same content elsewhere: same key
    assert moved.exit_code == 0 and "reusing the complete build" in _flat(moved.output)
    (cifs / "Si.cif").write_text((cifs / "Si.cif").read_text().replace("Si", "Ge"))
    edited = runner.invoke(app, ["dataset", "--cif-dir", str(cifs), *args[3:]])
    assert other_seed.exit_code == 0 and edited.exit_code == 0, edited.output
    assert len(list((tmp_path / "cache" / "datasets").iterdir())) == 3


def test_the_code_version_ignores_docstrings_and_comments_only():
    from training.cache import _without_docstrings, code_version

    plain = _without_docstrings("def f(x):\n    return x + 1\n")
    assert _without_docstrings('def f(x):\n    """Add one."""\n    return x + 1  # one\n') == plain
    assert _without_docstrings("def f(x):\n    return x + 2\n") != plain
    assert code_version() == code_version() and len(code_version()) == 16
