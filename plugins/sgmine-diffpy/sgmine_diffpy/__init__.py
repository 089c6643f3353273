"""sgmine-diffpy: hand sgmine's candidate space groups to diffpy refinements.

>>> from sgmine import predict
>>> from sgmine_diffpy import candidate_models, refine_candidates
>>> models = candidate_models("Ni.gr", "cifs/", top_k=3)            # doctest: +SKIP
>>> results = refine_candidates("Ni.gr", "cifs/", top_k=8)           # doctest: +SKIP
>>> results[0].cif, results[0].rw                                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sgmine_diffpy.candidates import CandidateModel, candidate_models, space_group_parameters
    from sgmine_diffpy.library import Library, LibraryEntry, LibraryError, load_library
    from sgmine_diffpy.refine import FitResult, fit_candidate, fit_candidates, refine_candidates

__version__ = "0.1.0"
#: Where each public name lives. They are imported on first use, so that ``sgmine --help``,
#: which loads :mod:`sgmine_diffpy.commands` to list the plugin's commands, stays fast.
_HOMES = {
    "CandidateModel": "candidates", "candidate_models": "candidates", "space_group_parameters": "candidates",
    "Library": "library", "LibraryEntry": "library", "LibraryError": "library", "load_library": "library",
    "FitResult": "refine", "fit_candidate": "refine", "fit_candidates": "refine", "refine_candidates": "refine",
}
__all__ = [
    "CandidateModel", "FitResult", "Library", "LibraryEntry", "LibraryError",
    "candidate_models", "fit_candidate", "fit_candidates", "load_library", "refine_candidates", "space_group_parameters",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"sgmine_diffpy.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'sgmine_diffpy' has no attribute {name!r}")
