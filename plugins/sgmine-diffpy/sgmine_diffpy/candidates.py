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
    model_rank: int
    space_group: int
    symbol: str
    probability: float
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

    Returns
    -------
    list of CandidateModel
        Ordered by model rank, then structure name. A candidate group with no structure in
        the library contributes nothing. Structures that cannot be read are skipped with
        a warning naming the file.

    Raises
    ------
    ValueError
        When ``gr`` cannot be scored (the message says why).
    """
    prediction = gr if isinstance(gr, Prediction) else predict([gr], top_k=top_k, model=model)[0]
    if not prediction.ok:
        raise ValueError(f"{prediction.source}: {prediction.message}")
    library = load_library(structures, symprec)
    if library is not structures:  # a Library passed in has had its skipped files reported
        for message in library.skipped:
            warnings.warn(f"skipped {message}", stacklevel=2)
    result = []
    for rank, candidate in enumerate(prediction.candidates[:top_k], start=1):
        for entry in sorted(library.with_group(candidate.space_group), key=lambda e: e.name):
            phase, sgpars = space_group_parameters(entry, candidate.space_group)
            result.append(
                CandidateModel(prediction.source, rank, candidate.space_group, candidate.symbol,
                               candidate.probability, entry, phase, sgpars)
            )
    return result
