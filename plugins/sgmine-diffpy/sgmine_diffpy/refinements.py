"""The refinements of ``sgmine identify``: each picked candidate refined with pdffit2 (as
``sgmine refine`` does, :func:`sgmine_diffpy.refine.fit_candidate`) on the screening grid, each
in a process of its own, on all cores, a stuck one stopped (:func:`refine_all`)."""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from sgmine_diffpy.rows import IdentifyRow

#: Least-squares iterations per refinement stage (screened structures start close).
FIT_STEPS = 20


#: Atom pairs (from the atoms of the refined cell to every atom within the fit range) a
#: refinement may cost: pdffit2's time per iteration grows with them, so a large cell is fitted
#: over a shorter range (:func:`fit_rmax`). At 250,000, cells up to ~20 atoms (Ni, Si, CeO2,
#: the Pnma perovskites) keep the full 30 Å; the 76-atom Cc cell screened for mefenamic acid is
#: fitted to 20 Å, 3.5x faster (40 s -> 12 s on a loaded 2-core machine).
PAIR_BUDGET = 250_000


#: The shortest fit range (Å) :func:`fit_rmax` gives: medium-range order stays in the fit.
MIN_FIT_RMAX = 12.0


#: Uiso (Å²) every refinement starts from: broad peaks first. From 0.005 Å², pdffit2 slid into a
#: false minimum on Si.gr's diamond (Rw 0.24, delta2 7.1 Å², against 0.118 from 0.007 or 0.01 Å²)
#: and stalled (Rw 0.99) or crashed on adamantine superstructures that fit from 0.01 Å².
FIT_START_UISO = 0.01


def refine_all(path, picks: list[tuple], curve, cnn, q, d, rmin, rmax, say, *, workers: int | None = None,
               first_rank: int = 1, optional_from: int | None = None, enough=None) -> list[IdentifyRow]:
    """Refine the picked structures ``(library, index, screen result, positions)``, ``workers``
    at a time (default: one per CPU core; one pdffit2 fit per process: :func:`_isolated`), on
    the screening grid (:func:`fit_grid`); with ``positions``, the free atom coordinates too
    (candidates made from the chemistry carry their template's positions).

    The picks from ``optional_from`` on are optional: once a row of the picks before it
    satisfies ``enough(row)``, those not started are dropped and those running are stopped;
    neither gives a row."""
    prob = {g: p for g, _, p in cnn}
    fit_curve = fit_grid(curve)
    tasks = []
    for rank, (lib, i, result, positions) in enumerate(picks, start=first_rank):
        row = IdentifyRow(path, rank, str(lib.ids[i]), str(lib.formulas[i]), int(lib.space_groups[i]), str(lib.symbols[i]),
                          float(result.rw[i]), cnn_probability=prob.get(int(lib.space_groups[i]), 0.0), source=str(lib.sources[i]))
        diameter = None if result.diameter is None or math.isinf(result.diameter[i]) else float(result.diameter[i])
        tasks.append((row, lib.structure(i), float(result.stretch[i]), fit_curve, q, d, rmin, rmax, diameter, positions))
    rows = []
    if not tasks:
        return rows
    for row, seconds in _isolated(tasks, max(1, min(len(tasks), workers or os.cpu_count() or 1)),
                                  optional_from=optional_from, enough=enough):
        if say:
            outcome = f"Rw {row.rw:.4f}" if row.ok else f"failed: {row.message}"
            say(f"sgmine identify: {path} × {row.structure_id} {row.formula} ({row.symbol}, screen Rw {row.rw_screen:.3f}): "
                f"{outcome} ({seconds:.1f} s)")
        rows.append(row)
    return rows


#: ADPs of a candidate made from the chemistry or symmetrised (a template of the sample, with
#: its coordinates refined): one Uiso per element (``refine.fit_candidate``'s ``adp_per``).
TEMPLATE_ADP = "element"


#: Seconds a refinement may take before it is stopped (its row then says so): twice the longest
#: of the 221 fits of the measured evaluation on a loaded 2-core machine (89.5 s, a molecular
#: crystal's 52-atom candidate); a fit that needs longer does not fit the per-file budget (one
#: pdffit2 fit had run into the 600 s this was before, then took 20 s on the next file).
FIT_TIMEOUT = 180.0


def _isolated(tasks: list, workers: int, *, optional_from: int | None = None, enough=None):
    """``(row, seconds)`` of each task (:func:`_refine_task`) in the tasks' order, each run in a
    process of its own, ``workers`` at a time: pdffit2 crashes on some structures (a segfault
    in its C++ core, seen on a screened candidate of Si.gr), which then costs that row (status
    error, the signal in its message), not the batch; a fit past :data:`FIT_TIMEOUT` is stopped.
    Tasks from ``optional_from`` on are dropped (killed where running; finished or not, no row)
    once a task before them gives a row for which ``enough(row)`` is true (:func:`refine_all`)."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    waiting = list(enumerate(tasks))
    running: dict = {}
    done: dict = {}
    emitted = 0
    while waiting or running:
        while waiting and len(running) < workers:
            index, task = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_refine_child, args=(send, task), daemon=True)
            process.start()
            send.close()
            running[index] = (process, receive, time.perf_counter())
        ready = wait([conn for _, conn, _ in running.values()], timeout=1.0)
        for index, (process, conn, started) in list(running.items()):
            seconds = time.perf_counter() - started
            if conn in ready:
                try:
                    done[index] = conn.recv()
                except (EOFError, OSError):
                    process.join(5)
                    code = process.exitcode
                    row = tasks[index][0]
                    row.status = "error"
                    row.message = (f"refinement crashed (pdffit2 killed by signal {-code})" if code is not None and code < 0
                                   else f"refinement process ended without a result (exit status {code})")
                    done[index] = (row, seconds)
            elif seconds > FIT_TIMEOUT:
                process.kill()
                row = tasks[index][0]
                row.status, row.message = "error", f"refinement stopped after {FIT_TIMEOUT:g} s"
                done[index] = (row, seconds)
            else:
                continue
            conn.close()
            process.join(5)
            del running[index]
        if optional_from is not None and enough is not None and any(
                index < optional_from and enough(result[0]) for index, result in done.items()):
            waiting = [(index, task) for index, task in waiting if index < optional_from]
            for index in [i for i in running if i >= optional_from]:
                process, conn, _ = running.pop(index)
                process.kill()
                process.join(5)
                conn.close()
            for index in [i for i in done if i >= optional_from]:
                del done[index]  # finished already: dropped all the same, so the rows never depend on timing
            optional_from = None
        while emitted in done:
            yield done.pop(emitted)
            emitted += 1


def _refine_child(conn, task) -> None:
    try:
        conn.send(_refine_task(task))
    finally:
        conn.close()


#: The refinement's r step (Å) at most: the screen's. Ni.gr's 0.01 Å points fitted on 0.05 Å give
#: the same Rw to 1e-4 in a fifth of the time (peaks are ≥ 0.1 Å wide; Nyquist at Qmax 30 is 0.1 Å).
FIT_STEP = 0.05


def fit_grid(curve):
    """``curve`` resampled to :data:`FIT_STEP` where its points are closer (else itself)."""
    from sgmine.gr import Curve
    from sgmine_diffpy.screen import step_grid

    r, g = np.asarray(curve.r, float), np.asarray(curve.g, float)
    if len(r) < 2 or np.median(np.diff(r)) >= FIT_STEP * 0.999:
        return curve
    grid = step_grid(float(r.min()), float(r.max()), FIT_STEP)
    return Curve(r=grid, g=np.interp(grid, r, g), metadata=dict(curve.metadata), source=curve.source,
                 header_lines=tuple(getattr(curve, "header_lines", ()) or ()))


def _refine_task(task):
    row, structure, stretch, curve, q, d, rmin, rmax, diameter, positions = task
    t = time.perf_counter()
    _refine(row, structure, stretch, curve, q, d, rmin, rmax, diameter, positions=positions)
    return row, time.perf_counter() - t


def better_fit(fits: list):
    """The fit of lowest Rw among those that succeeded, physical ones first (no
    :func:`~sgmine_diffpy.refine.physics_notes`); else the first. A particle envelope started at
    the screen's diameter can hold a bulk sample's refinement in a worse minimum (TiSe2, 100 K:
    Rw 0.259 at 73 Å, 0.190 as bulk), so such a candidate is refined both ways."""
    from sgmine_diffpy.refine import physics_notes

    done = [f for f in fits if f.ok and f.rw is not None and math.isfinite(f.rw)]
    return min(done, key=lambda f: (bool(physics_notes(f)), f.rw)) if done else fits[0]


def fit_rmax(n_atoms: int, volume: float, rmax: float) -> float:
    """The end of the fit range for a cell of ``n_atoms`` atoms and ``volume`` Å³: ``rmax``, or
    shorter where the cell's atom pairs within it, n² (4/3)π r³ / V, exceed :data:`PAIR_BUDGET`
    (never below :data:`MIN_FIT_RMAX`, nor above ``rmax``)."""
    if n_atoms < 1 or not volume > 0:
        return rmax
    budget = (PAIR_BUDGET * volume / (n_atoms ** 2 * 4.0 / 3.0 * math.pi)) ** (1.0 / 3.0)
    return float(min(rmax, max(MIN_FIT_RMAX, budget)))


def _refine(row: IdentifyRow, structure, stretch: float, curve, qmax, qdamp, rmin, rmax, diameter=None, *,
            positions: bool = False) -> None:
    from sgmine_diffpy import refine
    from sgmine_diffpy.candidates import CandidateModel, space_group_parameters
    from sgmine_diffpy.library import standardise

    try:
        for atom in structure:
            atom.Uisoequiv = FIT_START_UISO
        lat = structure.lattice
        structure.lattice.setLatPar(lat.a * stretch, lat.b * stretch, lat.c * stretch)
        entry = standardise(structure, row.structure_id)
        phase, sgpars = space_group_parameters(entry)
    except Exception as exc:  # LibraryError, spglib's and srfit's errors: this structure only
        row.status, row.message = "error", f"cannot set up the refinement: {type(exc).__name__}: {exc}"
        return
    candidate = CandidateModel(row.file, row.rank, entry.space_group, entry.symbol, row.cnn_probability or 0.0, entry, phase, sgpars)
    end = fit_rmax(len(candidate.structure), candidate.structure.lattice.volume, rmax)
    try:
        fits = [refine.fit_candidate(candidate, curve, qmax=qmax, qdamp=qdamp, rmin=rmin, rmax=end, max_steps=FIT_STEPS,
                                     spdiameter=size, refine_positions=positions,
                                     early_positions=positions, adp_per=TEMPLATE_ADP if positions else "site")
                for size in ([diameter, None] if diameter is not None else [None])]
    except Exception as exc:  # fit_candidate reports pdffit2's failures itself; anything else costs this row only
        row.status, row.message = "error", f"refinement failed: {type(exc).__name__}: {exc}"
        return
    result = better_fit(fits)
    row.fit = result
    row.status, row.message = result.status, result.message
    if end < rmax:
        row.message = "; ".join(m for m in (f"fitted to {end:.1f} Å ({len(candidate.structure)} atoms in the cell)", row.message) if m)
    if result.spdiameter is not None:
        row.message = "; ".join(m for m in (f"particle diameter {result.spdiameter:.1f} Å (from {diameter:g})", row.message) if m)
    elif diameter is not None:
        row.message = "; ".join(m for m in (f"bulk (refined from a {diameter:g} Å particle too: Rw {fits[0].rw:.4f})"
                                            if fits[0].ok else "bulk (the fit as a particle failed)", row.message) if m)
    row.rw, row.lattice = result.rw, dict(result.lattice)
