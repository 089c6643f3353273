"""Build a training dataset: simulated, augmented PDFs of labelled crystal structures.

``sgmine-train dataset`` takes structures from a CIF folder, a CIF table and/or PyXtal
(:mod:`training.structures`), simulates ``--augment`` PDFs of each with :mod:`sgmine.simulate`,
puts every curve on the model grid with :func:`sgmine.grid.resample` (exactly the runtime's cut,
interpolation, zero fill and min-max normalisation) and writes the reference format with
:func:`training.datafiles.write_dataset`.

Augmentation
------------
PDF number 0 of every structure uses the nominal parameters (:data:`NOMINAL`: PDFParams'
defaults, X-ray, no strain, rmax 30 Å, no noise, bulk). The others draw, independently
(:class:`Augmentation` holds the ranges):

- ``qmax``  uniform 14–30 Å⁻¹ (termination ripples of laboratory to high-energy instruments);
- ``qdamp`` log-uniform 0.01–0.08 Å⁻¹ (instrument resolution);
- ``uiso``  log-uniform 0.002–0.03 Å² (thermal motion, every atom alike);
- ``delta2`` uniform 0–4 Å² (correlated motion sharpening near-neighbour peaks);
- ``strain`` uniform −3 % … +3 % (isotropic lattice expansion or contraction);
- ``rmax``  30 Å with probability 1/2, otherwise uniform 15–30 Å; the curve ends there and the
  runtime's zero fill applies, as for a short measurement;
- ``radiation`` X-ray with probability 0.7, neutron with 0.3 (scattering weights);
- ``noise`` Gaussian, independent on the 0.01 Å simulation grid, standard deviation
  ``level`` × (max G − min G) with ``level`` uniform 0–0.03;
- nanoparticle envelope with probability 0.25: G(r) times the spherical-particle form factor
  ``1 − 1.5 x + 0.5 x³`` (``x = r/d``, zero beyond ``d``) for a diameter ``d`` uniform 20–100 Å
  (``PDFParams.spdiameter`` of the simulator).

With ``--realism`` (:meth:`Augmentation.measured`), what measured files have and the reference
data lack is drawn too (each independently; off in the reference recipe, whose draws are
unchanged):

- ``qmin``  uniform 0.3–1.5 Å⁻¹ for half of the PDFs (the low-Q cut-off's long ripple);
- ``step``  log-uniform 0.01–0.1 Å for half: the curve is kept only every ``step`` and
  interpolated from there, as a coarse measured grid is;
- ``baseline`` for 30 %: a slope plus one slow cosine (period 10–60 Å), up to 5 % of the
  curve's range (:func:`smooth_baseline`; what background subtraction or ``rpoly`` leaves);
- ``substituted`` for half: every element replaced by a distinct random one
  (:func:`training.variants.substituted`, same geometry, other scattering weights).

``--neutron-probability`` changes the share of neutron PDFs, and ``--negative-scatterers P``
gives each neutron PDF, with probability ``P``, one element replaced by H, Li, Ti or Mn
(``negative_scatterer``; :func:`training.variants.with_negative_scatterer`, after any
substitution): negative pair peaks, as MnO or TiC show under neutrons. It is drawn after every
other setting, so a build without it draws as before. ``--particle-probability`` and
``--particle-diameter LOW,HIGH`` change the share and the size range of the nanoparticles
(small particles of 10–20 Å end their PDF well inside the model's 30 Å).

``--variants N`` adds N symmetry-preserving variants of each structure
(:func:`training.variants.symmetric_variant`), each simulated ``--augment`` times; a variant
keeps its structure's id and ``split_group`` (formula and space group), so a split never
separates them, nor the same compound coming from two tables.

Each structure's draws come from a generator seeded with ``(seed, structure id)``, so a
structure gets the same PDFs however the work is split, ordered or resumed.

Parallel, resumable build
-------------------------
The structures are split into shards (``--shard-size`` structures each). Each shard is loaded,
labelled and simulated by one worker — a local process pool (``--workers``) or a Dask cluster
(``--scheduler ADDRESS``) — and written atomically to ``OUT/work/shard-NNNNN.npz``. A rerun of
the same command skips the shards already there; the final step joins the shards into the
dataset files in ``OUT``. ``OUT/work/plan.json`` records what the shards were built from; a
different command on the same folder stops with an error (use ``--fresh`` to start over).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import typer

import sgmine
from sgmine.files import atomic_write
from sgmine.grid import Grid, GridError, resample
from training.symbols import REFERENCE_GROUPS

#: Spacing of the simulated curves, in Å (fine enough for the runtime's interpolation).
R_STEP = 0.01
#: First simulated r, in Å (below the grid's 1.5 Å, so the runtime cut keeps a point either side).
R_START = 1.0

MANIFEST_PARAMS = (
    "qmax", "qdamp", "uiso", "delta2", "strain", "rmax", "radiation", "noise", "particle_diameter",
    "qmin", "step", "baseline", "substituted", "negative_scatterer",
)


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the augmentation draws (see the module docstring for the distributions)."""

    qmax: tuple[float, float] = (14.0, 30.0)
    qdamp: tuple[float, float] = (0.01, 0.08)
    uiso: tuple[float, float] = (0.002, 0.03)
    delta2: tuple[float, float] = (0.0, 4.0)
    strain: float = 0.03
    rmax: tuple[float, float] = (15.0, 30.0)
    full_rmax_probability: float = 0.5
    neutron_probability: float = 0.3
    noise: tuple[float, float] = (0.0, 0.03)
    particle_probability: float = 0.25
    particle_diameter: tuple[float, float] = (20.0, 100.0)
    # measurement realism (off in the reference recipe; see :meth:`measured`)
    qmin_probability: float = 0.0
    qmin: tuple[float, float] = (0.3, 1.5)
    step_probability: float = 0.0
    step: tuple[float, float] = (0.01, 0.1)
    baseline_probability: float = 0.0
    baseline: tuple[float, float] = (0.0, 0.05)
    substitution_probability: float = 0.0
    negative_scatterer_probability: float = 0.0

    @classmethod
    def measured(cls) -> "Augmentation":
        """The reference ranges plus what measured files have and the reference data lack: a
        low-Q cut (Qmin ripple), coarser data grids, a smooth residual baseline, and chemical
        substitution (element weights of other elements on the same geometry)."""
        return cls(qmin_probability=0.5, step_probability=0.5, baseline_probability=0.3,
                   substitution_probability=0.5)


@dataclass(frozen=True)
class Variant:
    """Simulation settings of one PDF. ``particle_diameter`` 0 means bulk; ``noise`` is relative."""

    qmax: float
    qdamp: float
    uiso: float
    delta2: float
    strain: float
    rmax: float
    radiation: str
    noise: float
    particle_diameter: float
    qmin: float = 0.0
    step: float = 0.01
    baseline: float = 0.0
    substituted: bool = False
    negative_scatterer: bool = False


def nominal_variant() -> Variant:
    """The un-augmented PDF: PDFParams' defaults, X-ray, no strain, rmax 30 Å, no noise, bulk."""
    from sgmine.simulate import PDFParams

    p = PDFParams()
    return Variant(float(p.qmax), float(p.qdamp), float(p.uiso), float(p.delta2), 0.0, 30.0, "xray", 0.0, 0.0)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_variant(rng: np.random.Generator, aug: Augmentation = Augmentation()) -> Variant:
    """One random set of simulation settings drawn from ``aug``'s distributions."""
    rmax = 30.0 if rng.random() < aug.full_rmax_probability else float(rng.uniform(*aug.rmax))
    particle = float(rng.uniform(*aug.particle_diameter)) if rng.random() < aug.particle_probability else 0.0
    # realism draws only when switched on, so the reference recipe's draws stay as they were
    realism: dict[str, Any] = {}
    if aug.qmin_probability > 0 and rng.random() < aug.qmin_probability:
        realism["qmin"] = float(rng.uniform(*aug.qmin))
    if aug.step_probability > 0 and rng.random() < aug.step_probability:
        realism["step"] = round(_log_uniform(rng, *aug.step), 4)
    if aug.baseline_probability > 0 and rng.random() < aug.baseline_probability:
        realism["baseline"] = float(rng.uniform(*aug.baseline))
    if aug.substitution_probability > 0 and rng.random() < aug.substitution_probability:
        realism["substituted"] = True
    variant = Variant(
        **realism,
        qmax=float(rng.uniform(*aug.qmax)),
        qdamp=_log_uniform(rng, *aug.qdamp),
        uiso=_log_uniform(rng, *aug.uiso),
        delta2=float(rng.uniform(*aug.delta2)),
        strain=float(rng.uniform(-aug.strain, aug.strain)),
        rmax=rmax,
        radiation="neutron" if rng.random() < aug.neutron_probability else "xray",
        noise=float(rng.uniform(*aug.noise)),
        particle_diameter=particle,
    )
    # drawn last, and only when switched on, so that every other draw stays as it was
    if (aug.negative_scatterer_probability > 0 and variant.radiation == "neutron"
            and rng.random() < aug.negative_scatterer_probability):
        variant = replace(variant, negative_scatterer=True)
    return variant


def augmentation_of(*, realism: bool, neutron_probability: Optional[float] = None,
                    negative_scatterers: float = 0.0, particle_probability: Optional[float] = None,
                    particle_diameter: Optional[tuple[float, float]] = None) -> Augmentation:
    """The augmentation of the dataset command's options.

    Parameters
    ----------
    realism
        Start from :meth:`Augmentation.measured` instead of the reference ranges.
    neutron_probability
        Share of neutron PDFs; ``None`` keeps the recipe's.
    negative_scatterers
        Probability that a neutron PDF gets a negative scatterer (H, Li, Ti, Mn).
    particle_probability
        Share of nanoparticle PDFs; ``None`` keeps the recipe's.
    particle_diameter
        ``(low, high)`` of the uniform diameter draw in Å; ``None`` keeps the recipe's.

    Raises
    ------
    ValueError
        If the diameters are not ``0 < low <= high``.
    """
    aug = Augmentation.measured() if realism else Augmentation()
    if neutron_probability is not None:
        aug = replace(aug, neutron_probability=float(neutron_probability))
    if particle_probability is not None:
        aug = replace(aug, particle_probability=float(particle_probability))
    if particle_diameter is not None:
        low, high = (float(d) for d in particle_diameter)
        if not 0 < low <= high:
            raise ValueError(f"particle diameters must be 0 < LOW <= HIGH, got {low:g},{high:g}")
        aug = replace(aug, particle_diameter=(low, high))
    return replace(aug, negative_scatterer_probability=float(negative_scatterers))


def structure_rng(seed: int, structure_id: str) -> np.random.Generator:
    """The random generator of one structure's augmentation, from ``(seed, structure id)``."""
    digest = hashlib.sha256(structure_id.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def sample_variants(rng: np.random.Generator, count: int, aug: Augmentation = Augmentation()) -> list[Variant]:
    """``count`` settings: the nominal one first, then ``count - 1`` random ones."""
    if count < 1:
        raise ValueError(f"need at least one PDF per structure, got {count}")
    return [nominal_variant()] + [sample_variant(rng, aug) for _ in range(count - 1)]


def simulate_variants(
    structure: Any, variants: list[Variant], rng: np.random.Generator, grid: Grid = Grid()
) -> tuple[np.ndarray, list[Optional[str]]]:
    """The PDFs of one structure for each variant, on ``grid`` (rows of ``resample(...).values``).

    Each curve is simulated from ``R_START`` to the variant's rmax in ``R_STEP`` steps (the
    particle envelope is ``PDFParams.spdiameter``), given its noise, and put on the grid
    exactly as the runtime puts a measurement. Returns
    the rows and, per variant, ``None`` or the reason it failed (its row is then all NaN).
    """
    from sgmine.simulate import PDFParams, SimulationError, pair_table, pdf
    from training.variants import substituted, with_negative_scatterer

    # One table serves every variant: strain, widths and radiation weights apply in pdf().
    table = pair_table(structure, rmax=max(v.rmax for v in variants), radiation=variants[0].radiation)
    rows = np.full((len(variants), int(grid.npoints)), np.nan)
    errors: list[Optional[str]] = []
    for i, v in enumerate(variants):
        noise = rng.standard_normal(int(round((v.rmax - R_START) / R_STEP)) + 1)
        try:
            r = R_START + R_STEP * np.arange(noise.size)
            params = PDFParams(
                qmax=v.qmax, qdamp=v.qdamp, uiso=v.uiso, delta2=v.delta2, radiation=v.radiation,
                spdiameter=v.particle_diameter, qmin=v.qmin,
            )
            weighted = substituted(table, rng) if v.substituted else table
            if v.negative_scatterer:
                weighted = with_negative_scatterer(weighted, rng)
            g = np.asarray(pdf(weighted, r, params, strain=v.strain), dtype=float)
            if v.noise > 0:
                g = g + noise * v.noise * float(np.ptp(g))
            if v.baseline > 0:
                g = g + v.baseline * float(np.ptp(g)) * smooth_baseline(r, rng)
            if v.step != R_STEP:  # a measurement on a coarser grid
                keep = np.arange(0, r.size, max(1, int(round(v.step / R_STEP))))
                r, g = r[keep], g[keep]
            rows[i] = resample(r, g, grid).values
            errors.append(None)
        except (GridError, SimulationError, ValueError, RuntimeError, MemoryError) as exc:
            errors.append(f"PDF {i}: {' '.join(str(exc).split())[:200]}")
    return rows, errors


def smooth_baseline(r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying residual baseline of size about 1: a random slope plus one cosine of
    period 10–60 Å (what an imperfect background subtraction or ``rpoly`` leaves behind)."""
    slope, amplitude = rng.uniform(-1.0, 1.0, 2)
    period, phase = rng.uniform(10.0, 60.0), rng.uniform(0.0, 2 * np.pi)
    return slope * (r - r.mean()) / max(float(np.ptp(r)), 1e-9) + amplitude * np.cos(2 * np.pi * r / period + phase)


# --------------------------------------------------------------------------- shards


@dataclass
class ShardSpec:
    """What one worker does: load these structure tasks and simulate ``augment`` PDFs of each."""

    index: int
    tasks: list[Any]
    augment: int
    seed: int
    space_groups: Optional[tuple[int, ...]]
    symprec: float
    max_atoms: int
    augmentation: Augmentation = field(default_factory=Augmentation)
    grid: Grid = field(default_factory=Grid)
    variants: int = 0
    scale: Optional[tuple[float, float]] = None


@dataclass
class ShardResult:
    """A finished shard: curves, labels, manifest rows, skipped structures, worker seconds."""

    index: int
    x: np.ndarray
    y: np.ndarray
    manifest: list[dict[str, Any]]
    skipped: list[tuple[str, str, str]]  # (structure id, kind, message)
    n_structures: int
    seconds: float


#: Tasks that build a crystal (a failure is "synthetic failed", not an unreadable file).
SYNTHETIC_TASKS = ("SyntheticCrystal", "MolecularCrystal")


def _task_id(task: Any) -> str:
    return str(getattr(task, "structure_id", None) or getattr(task, "material_id", None) or task)


def build_shard(spec: ShardSpec) -> ShardResult:
    """Load, label and simulate one shard (runs in a worker process or on a Dask worker)."""
    from training.structures import StructureError

    start = time.perf_counter()
    xs, ys, manifest, skipped = [], [], [], []
    n_structures = 0
    for task in spec.tasks:
        failed = "synthetic failed" if type(task).__name__ in SYNTHETIC_TASKS else "unreadable or no symmetry"
        try:
            record = task.load(spec.symprec)
        except StructureError as exc:
            skipped.append((_task_id(task), failed, str(exc)))
            continue
        except Exception as exc:  # a reader bug must not lose the whole shard; record it
            skipped.append((_task_id(task), failed, f"{type(exc).__name__}: {exc}"[:300]))
            continue
        if spec.space_groups is not None and record.space_group not in spec.space_groups:
            skipped.append((record.structure_id, "space group not requested", f"spglib: {record.space_group}"))
            continue
        if len(record.structure) > spec.max_atoms:
            skipped.append((record.structure_id, "too many atoms", f"{len(record.structure)} atoms in the cell"))
            continue
        rng = structure_rng(spec.seed, record.structure_id)
        crystals = [record.structure] + structure_variants(record, spec.variants, rng, spec.symprec, skipped)
        for number, crystal in enumerate(crystals):
            factor = 1.0
            if spec.scale is not None:
                factor = _log_uniform(rng, *spec.scale)
                crystal = scaled_structure(crystal, factor)
            variants = sample_variants(rng, spec.augment, spec.augmentation)
            try:
                rows, errors = simulate_variants(crystal, variants, rng, spec.grid)
            except Exception as exc:
                skipped.append((record.structure_id, "simulation failed", f"{type(exc).__name__}: {exc}"[:300]))
                continue
            n_structures += 1
            for row, variant, error in zip(rows, variants, errors):
                if error is not None:
                    skipped.append((record.structure_id, "simulation failed", error))
                    continue
                xs.append(row.astype(np.float32))
                ys.append(record.space_group)
                manifest.append(
                    {
                        "structure_id": record.structure_id,
                        "source": record.source,
                        "formula": record.formula,
                        "space_group": record.space_group,
                        "variant": number,
                        "split_group": split_group(record.formula, record.space_group),
                        **{k: _fmt(getattr(variant, k)) for k in MANIFEST_PARAMS},
                        # the whole isotropic stretch of the distances: --scale's factor and the strain
                        "strain": _fmt((1.0 + variant.strain) * factor - 1.0),
                    }
                )
    x = np.array(xs, dtype=np.float32).reshape(len(xs), int(spec.grid.npoints))
    y = np.array(ys, dtype=np.int32)
    return ShardResult(spec.index, x, y, manifest, skipped, n_structures, time.perf_counter() - start)


def scaled_structure(structure: Any, factor: float) -> Any:
    """A copy of a diffpy ``structure`` with every cell length times ``factor`` (the same
    fractional coordinates and angles, so every distance is ``factor`` times longer)."""
    from diffpy.structure import Structure

    copy = Structure(structure)
    lat = copy.lattice
    copy.lattice.setLatPar(lat.a * factor, lat.b * factor, lat.c * factor, lat.alpha, lat.beta, lat.gamma)
    return copy


def structure_variants(record: Any, count: int, rng: np.random.Generator, symprec: float,
                       skipped: list[tuple[str, str, str]]) -> list[Any]:
    """Up to ``count`` symmetry-preserving variants of ``record``'s structure (a few draws each;
    a structure whose variants keep failing is used as it is, and the failure is recorded)."""
    from training.structures import StructureError
    from training.variants import symmetric_variant

    found: list[Any] = []
    for _ in range(3 * count):
        if len(found) == count:
            break
        try:
            found.append(symmetric_variant(record.structure, rng, symprec=symprec))
        except StructureError:
            continue
        except Exception as exc:  # a symmetry or geometry bug must not lose the structure itself
            skipped.append((record.structure_id, "variant failed", f"{type(exc).__name__}: {exc}"[:300]))
            break
    return found


def split_group(formula: str, space_group: int) -> str:
    """What a structure-disjoint split keeps together: every structure (and variant) of one
    composition and space group, so that the same compound from two tables never straddles it."""
    return f"{formula}|{space_group}"


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def shard_path(work: Path, index: int) -> Path:
    return work / f"shard-{index:05d}.npz"


def save_shard(work: Path, result: ShardResult) -> Path:
    """Write a shard atomically (temporary file, then rename)."""
    path = shard_path(work, result.index)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x=result.x,
        y=result.y,
        manifest=np.array(json.dumps(result.manifest)),
        skipped=np.array(json.dumps(result.skipped)),
        n_structures=np.array(result.n_structures),
        seconds=np.array(result.seconds),
    )
    atomic_write(path, buf.getvalue())
    return path


def load_shard(path: Path) -> ShardResult:
    with np.load(path) as data:
        return ShardResult(
            index=int(path.stem.split("-")[1]),
            x=data["x"],
            y=data["y"],
            manifest=json.loads(str(data["manifest"])),
            skipped=[tuple(s) for s in json.loads(str(data["skipped"]))],
            n_structures=int(data["n_structures"]),
            seconds=float(data["seconds"]),
        )


# --------------------------------------------------------------------------- the build


@dataclass
class BuildSummary:
    """What a build did: rows, structures, skips by kind, and the throughput of this run."""

    out: Path
    n_rows: int
    n_structures: int
    counts: dict[int, int]
    skipped: dict[str, int]
    shards_built: int
    shards_reused: int
    wall_seconds: float
    structures_built: int
    rows_built: int

    @property
    def structures_per_second(self) -> float:
        return self.structures_built / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def pdfs_per_second(self) -> float:
        return self.rows_built / self.wall_seconds if self.wall_seconds > 0 else float("nan")


class BuildError(RuntimeError):
    """A dataset build that cannot go on (mismatched work folder, nothing to build, ...)."""


def _plan_fingerprint(plan: dict[str, Any]) -> str:
    """Hash of what decides the shards' contents (not the command line: --workers may change)."""
    decisive = {k: v for k, v in plan.items() if k != "command"}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare_work(out: Path, plan: dict[str, Any], fresh: bool) -> Path:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.json"
    plan = {**plan, "fingerprint": _plan_fingerprint(plan)}
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        if old.get("fingerprint") != plan["fingerprint"]:
            if not fresh:
                raise BuildError(
                    f"{work} holds shards of a different build ({old.get('command', '?')}); "
                    "use another --out folder, or --fresh to delete them and start over"
                )
    if fresh:
        for p in work.glob("shard-*.npz"):
            p.unlink()
    atomic_write(plan_file, json.dumps(plan, indent=2, default=str) + "\n")
    return work


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pdfs]} PDFs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _run_local(specs: list[ShardSpec], workers: int) -> Iterable[ShardResult]:
    if workers <= 1:
        for spec in specs:
            yield build_shard(spec)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(build_shard, spec) for spec in specs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _run_dask(specs: list[ShardSpec], scheduler: Any) -> Iterable[ShardResult]:
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = [client.submit(build_shard, spec, pure=False) for spec in specs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        if client is not scheduler:
            client.close()


def build_dataset(
    tasks: list[Any],
    out: str | Path,
    *,
    augment: int = 10,
    seed: int = 0,
    space_groups: Optional[Iterable[int]] = REFERENCE_GROUPS,
    workers: int = 1,
    scheduler: Any = None,
    shard_size: int = 25,
    symprec: float = 0.01,
    max_atoms: int = 400,
    augmentation: Augmentation = Augmentation(),
    grid: Grid = Grid(),
    variants: int = 0,
    scale: Optional[tuple[float, float]] = None,
    fresh: bool = False,
    command: str = "",
    description: str | None = None,
    progress: bool = True,
    cache: dict[str, Any] | None = None,
) -> BuildSummary:
    """Simulate ``augment`` PDFs of each structure task and write the dataset to ``out``.

    ``tasks`` come from :mod:`training.structures`; ``space_groups`` (``None``: any) keeps only
    structures spglib puts in those groups; ``max_atoms`` skips bigger cells. Work runs in
    ``workers`` local processes, or on the Dask scheduler ``scheduler`` (an address or a
    ``distributed.Client``), in shards written to ``out/work`` and reused on a rerun.
    ``variants`` symmetry-preserving variants of each structure (:mod:`training.variants`) get
    ``augment`` PDFs each too; they share the structure's split group. ``scale`` ``(low, high)``
    stretches every structure and variant by a factor drawn log-uniformly from that range before
    it is simulated (the manifest's ``strain`` holds the whole stretch). ``cache`` (the build's
    :func:`training.cache.dataset_key`) goes into ``dataset.json``; the simulator's code version
    (:func:`training.cache.code_version`) is part of the plan, so shards of other code are not reused.

    The steps: the plan (what decides the shards) checked against ``out/work``, the shards not
    there yet built (:func:`_build_shards`), all shards joined (:func:`_join_shards`), the
    dataset files written with their metadata (:func:`_dataset_info`).
    """
    from training.datafiles import write_dataset

    if augment < 1:
        raise BuildError(f"--augment must be at least 1, got {augment}")
    if shard_size < 1:
        raise BuildError(f"--shard-size must be at least 1, got {shard_size}")
    if scale is not None and not 0.5 <= scale[0] <= scale[1] <= 2.0:
        raise BuildError(f"--scale must satisfy 0.5 <= low <= high <= 2, got {scale[0]:g}, {scale[1]:g}")
    if not tasks:
        raise BuildError("no structures to build from: give --cif-dir, --cif-table, --synthetic N, --molecular N and/or --prototypes N")
    out = Path(out)
    groups = tuple(sorted({int(g) for g in space_groups})) if space_groups is not None else None
    plan = _plan(
        _unique_ids(tasks), augment=augment, seed=seed, groups=groups, shard_size=shard_size, symprec=symprec,
        max_atoms=max_atoms, augmentation=augmentation, grid=grid, command=command, variants=variants, scale=scale,
    )
    work = _prepare_work(out, plan, fresh)
    specs = [
        ShardSpec(i, tasks[start : start + shard_size], augment, seed, groups, symprec, max_atoms, augmentation, grid,
                  variants, scale)
        for i, start in enumerate(range(0, len(tasks), shard_size))
    ]
    todo = [s for s in specs if not shard_path(work, s.index).exists()]

    start = time.perf_counter()
    structures_built, rows_built = _build_shards(work, todo, len(specs), workers, scheduler, progress)
    wall = time.perf_counter() - start

    x, y, manifest, skipped, n_structures = _join_shards(work, specs, grid)
    if len(y) == 0:
        reasons = _count_kinds(skipped)
        raise BuildError(f"no PDFs were made from {len(tasks)} structures (skipped: {reasons})")
    _write_skipped(out, skipped)
    classes, counts = np.unique(y, return_counts=True)
    info = _dataset_info(
        grid=grid, seed=seed, command=command, augment=augment, variants=variants, scale=scale, augmentation=augmentation,
        symprec=symprec, n_structures=n_structures, manifest=manifest, skipped=skipped, classes=classes,
        n_rows=len(y), description=description,
    )
    if cache is not None:
        info["cache"] = cache
    write_dataset(out, x, y, manifest, info)
    return BuildSummary(
        out=out,
        n_rows=int(len(y)),
        n_structures=n_structures,
        counts={int(c): int(n) for c, n in zip(classes, counts)},
        skipped=_count_kinds(skipped),
        shards_built=len(todo),
        shards_reused=len(specs) - len(todo),
        wall_seconds=wall,
        structures_built=structures_built,
        rows_built=rows_built,
    )


def _unique_ids(tasks: list[Any]) -> list[str]:
    """The structure ids of ``tasks``; a :class:`BuildError` when two tasks share one."""
    ids = [_task_id(t) for t in tasks]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise BuildError(f"structure ids are not unique (e.g. {dup}); each structure needs its own id")
    return ids


def _plan(ids: list[str], *, augment: int, seed: int, groups: Optional[tuple[int, ...]], shard_size: int,
          symprec: float, max_atoms: int, augmentation: Augmentation, grid: Grid, command: str,
          variants: int, scale: Optional[tuple[float, float]] = None) -> dict[str, Any]:
    """What the shards are built from (``work/plan.json``; all but ``command`` decide their
    contents, see :func:`_plan_fingerprint`), the simulator's code version among them."""
    from training.cache import code_version

    return {
        "structures": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "n_structures": len(ids),
        "augment": augment,
        "seed": seed,
        "space_groups": groups,
        "shard_size": shard_size,
        "symprec": symprec,
        "max_atoms": max_atoms,
        "augmentation": asdict(augmentation),
        "grid": grid.as_dict(),
        "command": command,
        "code": code_version(),
        **({"variants": variants} if variants else {}),
        **({"scale": list(scale)} if scale else {}),
    }


def _build_shards(work: Path, todo: list[ShardSpec], n_shards: int, workers: int, scheduler: Any,
                  progress: bool) -> tuple[int, int]:
    """Build the shards ``todo`` (of ``n_shards`` in all) on the local pool or the Dask
    scheduler, saving each to ``work`` as it finishes; returns the structures and rows built."""
    structures_built = rows_built = 0
    if not todo:
        return structures_built, rows_built
    runner = _run_dask(todo, scheduler) if scheduler is not None else _run_local(todo, workers)
    bar = _progress() if progress else None
    if bar is not None:
        bar.start()
        job = bar.add_task("shards", total=n_shards, completed=n_shards - len(todo), pdfs=0)
    try:
        for result in runner:
            save_shard(work, result)
            structures_built += result.n_structures
            rows_built += len(result.y)
            if bar is not None:
                bar.update(job, advance=1, pdfs=rows_built)
    finally:
        if bar is not None:
            bar.stop()
    return structures_built, rows_built


def _join_shards(work: Path, specs: list[ShardSpec], grid: Grid):
    """The shards of ``specs`` read back from ``work`` and joined in shard order:
    ``(x, y, manifest rows, skipped, number of structures)``."""
    results = [load_shard(shard_path(work, s.index)) for s in specs]
    x = np.concatenate([r.x for r in results]) if results else np.zeros((0, grid.npoints), np.float32)
    y = np.concatenate([r.y for r in results]).astype(np.int32)
    manifest = [m for r in results for m in r.manifest]
    skipped = [s for r in results for s in r.skipped]
    return x, y, manifest, skipped, sum(r.n_structures for r in results)


def _dataset_info(*, grid: Grid, seed: int, command: str, augment: int, variants: int,
                  scale: Optional[tuple[float, float]], augmentation: Augmentation,
                  symprec: float, n_structures: int, manifest: list[dict[str, Any]],
                  skipped: list[tuple[str, str, str]], classes: np.ndarray, n_rows: int,
                  description: str | None) -> dict[str, Any]:
    """The dataset's metadata (``dataset.json``): how it was built, from what, and a description
    (``description``, else one made from the counts, sources and classes)."""
    return {
        "grid": grid.as_dict(),
        "seed": seed,
        "command": command,
        "augment": augment,
        "variants": variants,
        **({"scale": list(scale)} if scale else {}),
        "augmentation": asdict(augmentation),
        "symprec": symprec,
        "n_structures": n_structures,
        "sources": sorted({m["source"].split(":")[0] for m in manifest}),
        "skipped": _count_kinds(skipped),
        "sgmine_version": sgmine.__version__,
        "description": description
        or f"{n_rows} simulated PDFs of {n_structures} structures ({', '.join(sorted({m['source'].split(':')[0] for m in manifest}))}), "
        f"{augment} per structure, space groups {', '.join(str(int(c)) for c in classes)}",
    }


def _count_kinds(skipped: list[tuple[str, str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, kind, _ in skipped:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _write_skipped(out: Path, skipped: list[tuple[str, str, str]]) -> None:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["structure_id", "kind", "reason"])
    writer.writerows(skipped)
    atomic_write(out / "skipped.csv", buf.getvalue())


# --------------------------------------------------------------------------- command line


def parse_space_groups(text: str) -> Optional[tuple[int, ...]]:
    """``"2,14,15"`` -> ``(2, 14, 15)``; ``"all"`` -> ``None`` (no selection)."""
    if text.strip().lower() == "all":
        return None
    try:
        groups = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated space-group numbers or 'all', got {text!r}") from None
    bad = [g for g in groups if not 1 <= g <= 230]
    if bad or not groups:
        raise typer.BadParameter(f"space groups must be numbers 1-230, got {text!r}")
    return groups


def _low_high(text: str, *, what: str, example: str) -> tuple[float, float]:
    """``"1.5,4.4"`` -> ``(1.5, 4.4)``; a clear error naming ``what`` and an ``example`` otherwise."""
    try:
        lo, hi = (float(t) for t in text.replace(" ", "").split(","))
    except ValueError:
        raise typer.BadParameter(f"expected two {what} as LOW,HIGH (e.g. {example}), got {text!r}") from None
    return lo, hi


def parse_distance_range(text: str) -> tuple[float, float]:
    """``"1.5,4.4"`` -> ``(1.5, 4.4)``: two distances in Å (their range is checked by
    :func:`training.structures.prototype_crystals`)."""
    return _low_high(text, what="distances in Å", example="1.5,4.4")


def parse_grid(text: str) -> Grid:
    """``"1.5,30,571"`` -> ``Grid(rmin=1.5, rmax=30, npoints=571)``: the model grid of a dataset
    (interpolation and normalisation stay the runtime's defaults)."""
    try:
        rmin, rmax, npoints = text.replace(" ", "").split(",")
        return Grid(rmin=float(rmin), rmax=float(rmax), npoints=int(npoints))
    except ValueError as exc:
        raise typer.BadParameter(f"expected the grid as RMIN,RMAX,NPOINTS (e.g. 1.5,30,209), got {text!r}: {exc}") from None


def parse_prototype_kinds(text: Optional[str]) -> tuple[str, ...]:
    """``"graphite,lonsdaleite"`` -> the kinds, checked against :data:`training.structures.PROTOTYPES`;
    ``None`` -> :data:`training.structures.ELEMENT_PROTOTYPES`."""
    from training.structures import ELEMENT_PROTOTYPES, PROTOTYPES

    if text is None:
        return ELEMENT_PROTOTYPES
    kinds = tuple(k for k in text.replace(" ", "").split(",") if k)
    unknown = [k for k in kinds if k not in PROTOTYPES]
    if unknown or not kinds:
        raise typer.BadParameter(f"unknown prototype(s) {unknown or text!r}; known: {', '.join(PROTOTYPES)}")
    return kinds


def parse_diameter_range(text: str) -> tuple[float, float]:
    """``"10,40"`` -> ``(10.0, 40.0)``: two particle diameters in Å (checked by :func:`augmentation_of`)."""
    return _low_high(text, what="particle diameters in Å", example="10,40")


def parse_scale_range(text: str) -> tuple[float, float]:
    """``"0.7,1.4"`` -> ``(0.7, 1.4)``: two stretch factors (checked by :func:`build_dataset`)."""
    return _low_high(text, what="stretch factors", example="0.7,1.4")


def dataset_command(
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(
        None, "--out", help="Folder for the dataset (x.csv, y.csv, size_sg.csv, manifest.csv, dataset.npz); default: "
        "$SGMINE_CACHE/datasets/KEY (~/.cache/sgmine), KEY a hash of the options, input tables and simulator code."
    ),
    cif_dir: Optional[Path] = typer.Option(None, "--cif-dir", help="Folder of CIF files (searched recursively)."),
    cif_table: list[Path] = typer.Option(
        [], "--cif-table", help="CSV(.gz) of CIF strings with columns material_id (or id), cif (and space_group); "
        "repeat for several tables (a structure id already taken by an earlier table is skipped)."
    ),
    synthetic: int = typer.Option(
        0, "--synthetic", help="Number of synthetic crystals (Wyckoff combinations of real materials, random "
        "elements and coordinates), spread over the groups."
    ),
    molecular: int = typer.Option(
        0, "--molecular", help="Number of molecular crystals (random organic molecules with H, packed on the general "
        "position), spread over the groups of --space-groups where organics are common (P-1, P2_1/c, C2/c, Pnma, ...)."
    ),
    synthetic_placement: str = typer.Option(
        "wyckoff", "--synthetic-placement", help="How synthetic crystals get their atoms: 'wyckoff' (vectorised, "
        "~30 ms per crystal) or 'pyxtal' (PyXtal's from_random, ~1 s; the datasets before 2026-12-02)."
    ),
    space_groups: str = typer.Option(
        ",".join(map(str, REFERENCE_GROUPS)), "--space-groups",
        help="Comma-separated space groups to keep (and to make synthetic crystals in); 'all' keeps every group.",
    ),
    augment: int = typer.Option(10, "--augment", help="PDFs per structure: the nominal one plus augment-1 random ones."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic crystals and the augmentation."),
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", help="Local worker processes."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (e.g. tcp://host:8786)."),
    shard_size: int = typer.Option(25, "--shard-size", help="Structures per shard (the unit of resumable work)."),
    symprec: float = typer.Option(0.01, "--symprec", help="spglib distance tolerance (Å) for the labels."),
    max_atoms: int = typer.Option(400, "--max-atoms", help="Skip structures with more atoms than this in the cell."),
    prototypes: int = typer.Option(
        0, "--prototypes", help="Crystals per prototype (one-element fcc, hcp, diamond, bcc, simple-cubic unless "
        "--prototype-kinds says otherwise) in --space-groups."
    ),
    prototype_kinds: Optional[str] = typer.Option(
        None, "--prototype-kinds", help="Comma-separated prototypes for --prototypes (default: fcc,hcp,diamond,bcc,"
        "simple-cubic; also graphite, lonsdaleite: layers and hexagonal networks of short bonds, with "
        "--prototype-distance about 1.35,1.65; rocksalt, fluorite: compounds of a random cation and anion, with "
        "--prototype-distance about 1.9,3.3); those outside --space-groups are left out."
    ),
    prototype_distance: str = typer.Option(
        "1.5,4.4", "--prototype-distance", help="Range of the prototypes' nearest-neighbour distances, Å, as LOW,HIGH "
        "(C–C 1.54 in diamond to Sr–Sr 4.3 in fcc; the datasets before 2026-12-02 used 2.3,3.3)."
    ),
    synthetic_max_atoms: int = typer.Option(
        64, "--synthetic-max-atoms", help="Largest conventional cell (atoms) of a synthetic crystal."
    ),
    variants: int = typer.Option(
        0, "--variants", help="Symmetry-preserving variants per structure (random symmetric strain and atomic moves), "
        "each simulated --augment times."
    ),
    scale: Optional[str] = typer.Option(
        None, "--scale", help="Stretch every structure by a factor drawn log-uniformly from LOW,HIGH (e.g. 0.7,1.4) "
        "before simulating it, so that each structure type is seen at other sizes (a symmetry does not depend on size)."
    ),
    realism: bool = typer.Option(
        False, "--realism", help="Measured-like augmentation on top of the reference ranges: Qmin ripple, coarse data grids, "
        "residual baselines, element substitution (Augmentation.measured)."
    ),
    neutron_probability: Optional[float] = typer.Option(
        None, "--neutron-probability", min=0.0, max=1.0,
        help="Share of the augmented PDFs simulated with neutron weights (default: the recipe's 0.3).",
    ),
    negative_scatterers: float = typer.Option(
        0.0, "--negative-scatterers", min=0.0, max=1.0,
        help="Probability that a neutron PDF gets one element replaced by H, Li, Ti or Mn (negative scattering "
        "lengths: negative pair peaks, as in MnO or TiC).",
    ),
    particle_probability: Optional[float] = typer.Option(
        None, "--particle-probability", min=0.0, max=1.0,
        help="Share of the augmented PDFs given a spherical nanoparticle envelope (default: the recipe's 0.25).",
    ),
    particle_diameter: Optional[str] = typer.Option(
        None, "--particle-diameter", help="Range of the nanoparticle diameters, Å, as LOW,HIGH, drawn uniformly "
        "(default: the recipe's 20,100; 10,40 for small particles).",
    ),
    max_structures: int = typer.Option(
        0, "--max-structures", help="Use a random sample (from --seed) of this many of the structures found (0 = all)."
    ),
    grid: Optional[str] = typer.Option(
        None, "--grid", help="The model grid as RMIN,RMAX,NPOINTS (Å, Å, points; default: sgmine.grid.Grid's, "
        "spacegroupMining's 1.5-30 Å on 209 points). A model trained on the dataset carries its grid in its ONNX metadata."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Delete shards of an earlier, different build in OUT/work."),
    description: Optional[str] = typer.Option(None, "--description", help="Text for the model's training_data metadata."),
) -> None:
    """Simulate a training dataset (reference x.csv/y.csv/size_sg.csv format) from crystal structures.

    Rerunning the same command reuses a complete build (same options, input tables and simulator
    code: :mod:`training.cache`) and resumes an interrupted one.
    """
    import shlex
    import sys

    from rich.console import Console

    from training import cache, structures

    console = Console(stderr=True)
    key = cache.dataset_key(ctx.params)
    out = out if out is not None else cache.dataset_dir(key["key"])
    if cache.complete_build(out, key["key"]):
        console.print(f"reusing the complete build in {out} (key {key['key']}): nothing to simulate")
        return
    groups = parse_space_groups(space_groups)
    distance = parse_distance_range(prototype_distance)
    model_grid = parse_grid(grid) if grid is not None else Grid()
    if (synthetic or molecular) and groups is None:
        raise typer.BadParameter("--synthetic and --molecular need a list of --space-groups, not 'all'")
    try:
        tasks = _gather_tasks(
            console, cif_dir=cif_dir, cif_table=cif_table, synthetic=synthetic, molecular=molecular, groups=groups, seed=seed,
            synthetic_max_atoms=synthetic_max_atoms, synthetic_placement=synthetic_placement, prototypes=prototypes,
            prototype_kinds=parse_prototype_kinds(prototype_kinds), prototype_distance=distance,
            max_structures=max_structures,
        )
        summary = build_dataset(
            tasks, out, augment=augment, seed=seed, space_groups=groups, workers=workers, scheduler=scheduler,
            shard_size=shard_size, symprec=symprec, max_atoms=max_atoms, fresh=fresh, variants=variants, grid=model_grid,
            scale=parse_scale_range(scale) if scale else None,
            augmentation=augmentation_of(realism=realism, neutron_probability=neutron_probability,
                                         negative_scatterers=negative_scatterers,
                                         particle_probability=particle_probability,
                                         particle_diameter=parse_diameter_range(particle_diameter) if particle_diameter else None),
            command=shlex.join(["sgmine-train", *sys.argv[1:]]), description=description, cache=key,
        )
    except (structures.StructureError, BuildError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    _print_summary(console, summary)


def _gather_tasks(console: Any, *, cif_dir: Optional[Path], cif_table: list[Path], synthetic: int, molecular: int,
                  groups: Optional[tuple[int, ...]], seed: int, synthetic_max_atoms: int,
                  synthetic_placement: str, prototypes: int, prototype_kinds: tuple[str, ...],
                  prototype_distance: tuple[float, float],
                  max_structures: int) -> list[Any]:
    """The structure tasks of ``sgmine-train dataset``, in this order: the CIF folder, each CIF
    table (ids already taken skipped), synthetic crystals, molecular crystals, prototypes; then a random sample of
    ``max_structures`` of them (from ``seed``) when that is fewer."""
    from training import structures

    tasks: list[Any] = []
    if cif_dir is not None:
        found = structures.cif_directory(cif_dir)
        console.print(f"{cif_dir}: {len(found)} CIF files")
        tasks += found
    for table in cif_table:
        taken = {_task_id(t) for t in tasks}
        found = [t for t in structures.cif_table(table, list(groups) if groups else None) if _task_id(t) not in taken]
        console.print(f"{table}: {len(found)} rows selected")
        tasks += found
    if synthetic:
        tasks += structures.synthetic_crystals(synthetic, list(groups), seed, synthetic_max_atoms,
                                               placement=synthetic_placement)
    if molecular:
        tasks += structures.molecular_crystals(molecular, list(groups), seed)
    if prototypes:
        kinds = [k for k in prototype_kinds if groups is None or structures.PROTOTYPES[k][0] in groups]
        tasks += structures.prototype_crystals(prototypes, kinds, seed, distance=prototype_distance)
    if 0 < max_structures < len(tasks):
        keep = np.sort(np.random.default_rng(seed).choice(len(tasks), max_structures, replace=False))
        tasks = [tasks[i] for i in keep]
        console.print(f"using a random sample of {max_structures} structures")
    return tasks


def _print_summary(console: Any, summary: BuildSummary) -> None:
    """What ``sgmine-train dataset`` made: rows, per-group counts, skips, this run's throughput."""
    console.print(
        f"wrote {summary.n_rows} PDFs of {summary.n_structures} structures to {summary.out} "
        f"({summary.shards_built} shards built, {summary.shards_reused} reused)"
    )
    console.print("per space group: " + ", ".join(f"{g}: {n}" for g, n in summary.counts.items()))
    if summary.skipped:
        console.print("skipped: " + ", ".join(f"{k}: {n}" for k, n in sorted(summary.skipped.items()))
                      + f" (details in {summary.out / 'skipped.csv'})")
    if summary.shards_built:
        console.print(
            f"this run: {summary.structures_built} structures, {summary.rows_built} PDFs in "
            f"{summary.wall_seconds:.1f} s = {summary.structures_per_second:.2f} structures/s, "
            f"{summary.pdfs_per_second:.1f} PDFs/s"
        )
