"""What sgmine says about one input: the plain data types of a scan's result.

:class:`Prediction` (one row of the table: the input, its status, its top :class:`Candidate`
space groups and what was doubted) is made by :mod:`sgmine.scan` and read by the output
modules (:mod:`sgmine.table`, :mod:`sgmine.reporters`, plugins). It lives here, with no
dependencies, so that those modules do not import the scoring pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The status of a scored input, and of one that could not be scored.
OK, ERROR = "ok", "error"


@dataclass(frozen=True)
class Candidate:
    """One candidate space group and the model's probability for it."""

    space_group: int
    symbol: str
    probability: float


@dataclass
class Prediction:
    """What sgmine says about one input: top candidates, or why it could not score it."""

    source: str
    status: str
    candidates: list[Candidate] = field(default_factory=list)
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    r_min: float | None = None
    r_max: float | None = None
    qmax: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The top candidate's calibrated probability (None for an error row).
    confidence: float | None = None
    #: Whether the input looks like the model's training data (None: error row, or the model
    #: carries no calibrated threshold and nothing speaks against the curve). False means: do
    #: not trust the candidates.
    in_domain: bool | None = None
    #: The probability that the input is of none of the model's classes, for a model with such
    #: an output (None otherwise, and for an error row); a large one makes ``confidence`` low.
    none_of_these: float | None = None
    #: Why the curve is not one the model can judge (see :mod:`sgmine.plausibility`); any
    #: doubt makes ``in_domain`` False.
    doubts: list[str] = field(default_factory=list)
    #: The model that scored it (:attr:`sgmine.model.Model.name`: a shipped model's name or its
    #: file) and that model's version; empty where not known (a row read from a CSV table).
    model: str = ""
    model_version: str = ""

    @property
    def ok(self) -> bool:
        """True when the input was scored."""
        return self.status == OK

    @property
    def best(self) -> Candidate | None:
        """The most likely candidate, or None for an error."""
        return self.candidates[0] if self.candidates else None
