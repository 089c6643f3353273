"""Candidate models: each top-k space group paired with the library structures of that group,
as diffpy.srfit parameter sets constrained to the space group.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from sgmine.model import Model
from sgmine.prediction import Prediction
from sgmine.scan import predict
from sgmine_diffpy.library import DEFAULT_SYMPREC, LibraryEntry, StructureSource, load_library


@dataclass
class CandidateModel:
    """A structure to refine: one library entry under one of the model's candidate groups.

    ``phase`` is a :class:`diffpy.srfit.structure.diffpyparset.DiffpyStructureParSet` of
    ``entry.structure``; ``sgpars`` is what ``constrainAsSpaceGroup(phase, space_group)``
    returned: its ``latpars``, ``xyzpars`` and ``adppars`` are the free parameters of the
    structure in that space group. Add ``phase`` to a ``PDFGenerator``/``FitContribution`` and
    the ``sgpars`` to a ``FitRecipe`` (``recipe.addVar(p)`` for each) to refine it with srfit.
    """

    source: str
    model_rank: int | None  # the group's rank among the model's candidates; None: not one of them
    space_group: int
    symbol: str
    probability: float | None  # the model's probability of the group; None: not one of its groups
    entry: LibraryEntry
    phase: object
    sgpars: object

    @property
    def cif(self) -> str:
        """The structure's file (or name, for a Structure given in memory)."""
        return self.entry.path or self.entry.name

    @property
    def structure(self):
        """The standardised diffpy Structure (the one ``phase`` wraps and constrains)."""
        return self.entry.structure


def space_group_parameters(entry: LibraryEntry, space_group: int | None = None):
    """``(phase, sgpars)``: a srfit parameter set of ``entry.structure`` constrained to its group.

    Uses ``DiffpyStructureParSet`` + ``constrainAsSpaceGroup``, which need diffpy.structure only
    (no diffpy.srreal). The structure is copied, so refining ``phase`` leaves ``entry`` alone.
    """
    from diffpy.srfit.structure import constrainAsSpaceGroup
    from diffpy.srfit.structure.diffpyparset import DiffpyStructureParSet
    from diffpy.structure import Structure

    name = "".join(ch if ch.isalnum() else "_" for ch in os.path.splitext(entry.name)[0]) or "phase"
    if not name[0].isalpha():
        name = "p_" + name
    phase = DiffpyStructureParSet(name, Structure(entry.structure))
    sgpars = constrainAsSpaceGroup(phase, space_group or entry.space_group)
    sgpars.latpars  # srfit builds the constraints on first access; do it now, once
    return phase, sgpars


def candidate_models(
    gr,
    structures: StructureSource,
    top_k: int = 3,
    model: Model | str | os.PathLike | None = None,
    symprec: float = DEFAULT_SYMPREC,
    *,
    every: bool = False,
) -> list[CandidateModel]:
    """Pair each of the top-``top_k`` space groups predicted for ``gr`` with the structures in
    ``structures`` whose spglib space group matches, best-ranked group first.

    Parameters
    ----------
    gr
        A PDF file path, an ``(r, G)`` pair, or a :class:`sgmine.Prediction` already made.
    structures
        A folder of ``*.cif`` files, a list of CIF paths / diffpy Structures, a mapping
        name → Structure, or a :class:`~sgmine_diffpy.library.Library`.
    top_k
        How many of the model's candidates to consider.
    model
        The ONNX model (path or loaded); None uses sgmine's shipped model. Ignored for a
        Prediction.
    every
        Also every other structure, under its own group, after those of the top-``top_k``
        groups (``sgmine refine --all``): its ``model_rank`` and ``probability`` are the
        prediction's for that group where the prediction ranks it, else None.

    Returns
    -------
    list of CandidateModel
        Ordered by model rank, then structure name. A candidate group with no structure in
        the library contributes nothing; :func:`left_out` says which structures were passed
        over and why. Structures that cannot be read are skipped with a warning naming the file.

    Raises
    ------
    ValueError
        When ``gr`` cannot be scored (the message says why).
    """
    if isinstance(gr, Prediction):
        prediction = gr
    else:
        prediction = predict([gr], top_k=_ALL_GROUPS if every else top_k, model=model)[0]
    if not prediction.ok:
        raise ValueError(f"{prediction.source}: {prediction.message}")
    library = load_library(structures, symprec)
    if library is not structures:  # a Library passed in has had its skipped files reported
        for message in library.skipped:
            warnings.warn(f"skipped {message}", stacklevel=2)
    result = []
    for rank, candidate in enumerate(prediction.candidates[:top_k], start=1):
        for entry in sorted(library.with_group(candidate.space_group), key=lambda e: e.name):
            result.append(_candidate(prediction.source, rank, candidate.space_group, candidate.symbol, candidate.probability, entry))
    if every:
        ranks = {c.space_group: (rank, c.probability) for rank, c in enumerate(prediction.candidates, start=1)}
        for entry, _ in left_out(prediction, library, top_k, complete=not isinstance(gr, Prediction)):
            rank, probability = ranks.get(entry.space_group, (None, None))
            result.append(_candidate(prediction.source, rank, entry.space_group, entry.symbol, probability, entry))
    return result


#: A top-k beyond any model's number of classes: all of its groups (:func:`sgmine.scan.top_candidates`).
_ALL_GROUPS = 10_000


def left_out(prediction: Prediction, library, top_k: int, *, complete: bool = False) -> list[tuple[LibraryEntry, str]]:
    """The structures of ``library`` that :func:`candidate_models` passes over for
    ``prediction``: those whose group is not among its top-``top_k``, each with the reason.

    Parameters
    ----------
    prediction
        A scored file; the further its ``candidates`` reach (score with every class of the
        model), the more precise the reasons.
    library
        A :class:`~sgmine_diffpy.library.Library`.
    top_k
        The number of the prediction's groups whose structures are refined.
    complete
        Whether ``prediction.candidates`` lists every group of the model (then a group not
        listed is not one of the model's groups).

    Returns
    -------
    list of (LibraryEntry, str)
        In the library's order (by name), e.g. ``(SrTiO3.cif, "its group 221 Pm-3m is not one
        of the model's groups")`` or ``(CaTiO3.cif, "its group 62 Pnma is not among the model's
        top-3 (the model ranks it 5th, p 0.012)")``.
    """
    ranks = {c.space_group: (rank, c.probability) for rank, c in enumerate(prediction.candidates, start=1)}
    passed = []
    for entry in sorted(library.entries, key=lambda e: e.name):
        rank, probability = ranks.get(entry.space_group, (None, None))
        if rank is not None and rank <= top_k:
            continue
        group = f"its group {entry.space_group} {entry.symbol}"
        if rank is not None:
            reason = f"{group} is not among the model's top-{top_k} (the model ranks it {_ordinal(rank)}, p {probability:.2g})"
        else:
            reason = f"{group} is not one of the model's groups" if complete else f"{group} is not among the model's top-{top_k}"
        passed.append((entry, reason))
    return passed


def _candidate(source: str, rank: int | None, space_group: int, symbol: str, probability: float | None,
               entry: LibraryEntry) -> CandidateModel:
    phase, sgpars = space_group_parameters(entry, space_group)
    return CandidateModel(source, rank, space_group, symbol, probability, entry, phase, sgpars)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
