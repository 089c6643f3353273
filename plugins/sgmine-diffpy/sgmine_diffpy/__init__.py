"""sgmine-diffpy: hand sgmine's candidate space groups to diffpy refinements.

>>> from sgmine import predict
>>> from sgmine_diffpy import candidate_models, refine_candidates
>>> models = candidate_models("Ni.gr", "cifs/", top_k=3)            # doctest: +SKIP
>>> results = refine_candidates("Ni.gr", "cifs/", top_k=8)           # doctest: +SKIP
>>> results[0].cif, results[0].rw                                    # doctest: +SKIP
"""

from sgmine_diffpy.candidates import CandidateModel, candidate_models, space_group_parameters
from sgmine_diffpy.library import Library, LibraryEntry, LibraryError, load_library
from sgmine_diffpy.refine import FitResult, fit_candidate, fit_candidates, refine_candidates

__version__ = "0.1.0"
__all__ = [
    "CandidateModel", "FitResult", "Library", "LibraryEntry", "LibraryError",
    "candidate_models", "fit_candidate", "fit_candidates", "load_library", "refine_candidates", "space_group_parameters",
]
