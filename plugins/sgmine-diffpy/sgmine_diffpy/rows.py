"""What ``sgmine identify`` reports: one row per refined structure (:class:`IdentifyRow`), one
summary per file (:class:`FileSummary`), their CSV columns, and whether a refined structure
fits the data (:func:`plausible`, :data:`GOOD_FIT_RW`)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

#: Refined Rw at or below which a plausible structure counts as fitting the data and puts its
#: space group ahead of the CNN's ranking (:func:`~sgmine_diffpy.ranking.combined_ranking`). 0.25 is the usual upper
#: end of an acceptable PDF refinement of a crystalline sample (a right structure refined
#: against measured data typically gives Rw 0.05–0.25; well above that the model misses
#: features of the data). Set a priori from that convention; it was NOT tuned on the measured
#: files, which serve for validation only (docs/identify/README.md).
GOOD_FIT_RW = 0.25


COLUMNS = ["file", "screen_rank", "structure_id", "formula", "space_group", "symbol", "rw_screen", "rw",
           "a", "b", "c", "alpha", "beta", "gamma", "cnn_probability", "source", "status", "message"]


SUMMARY_COLUMNS = ["file", "status", "radiation", "qmax", "best_structure", "best_formula", "best_space_group",
                   "best_symbol", "best_rw", "cnn_top", "ranking", "screen_s", "total_s", "message",
                   "composition", "composition_source"]


@dataclass
class IdentifyRow:
    """One refined library structure (or, with no structure, an error row for the file)."""

    file: str
    rank: int | None = None
    structure_id: str = ""
    formula: str = ""
    space_group: int | None = None
    symbol: str = ""
    rw_screen: float | None = None
    rw: float | None = None
    lattice: dict = field(default_factory=dict)
    cnn_probability: float | None = None
    source: str = ""
    status: str = "ok"
    message: str = ""
    fit: object = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> list[str]:
        num = lambda v, d: "" if v is None or not math.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
        lat = [num(self.lattice.get(k), 5) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
        return [self.file, "" if self.rank is None else str(self.rank), self.structure_id, self.formula,
                "" if self.space_group is None else str(self.space_group), self.symbol, num(self.rw_screen, 4),
                num(self.rw, 4), *lat, num(self.cnn_probability, 4), self.source, self.status, self.message]


@dataclass
class FileSummary:
    """What one file came to: the best structure and the combined space-group ranking."""

    file: str
    status: str = "ok"
    radiation: str = ""
    qmax: float | None = None
    best: IdentifyRow | None = None
    cnn: list = field(default_factory=list)  # [(space_group, symbol, probability)], best first
    ranking: list = field(default_factory=list)  # [(space_group, symbol, rw | None, p_cnn)], best first
    screen_s: float = 0.0
    total_s: float = 0.0
    message: str = ""
    composition: str = ""  # the formula used, normalised
    composition_source: str = "none"  # table, option, header or none

    @property
    def answer(self) -> IdentifyRow | None:
        """The structure the summary names as the file's answer (its ``best_*`` columns): the
        best fit where it fits (:func:`plausible`, Rw ≤ :data:`GOOD_FIT_RW`), None when nothing
        fits (``best`` is then only the closest refinement; the message says nothing fits)."""
        b = self.best
        return b if b is not None and plausible(b) and b.rw <= GOOD_FIT_RW else None

    def row(self) -> list[str]:
        b = self.answer
        cnn = f"{self.cnn[0][0]} {self.cnn[0][1]} ({self.cnn[0][2]:.3f})" if self.cnn else ""
        rank = "; ".join(f"{g} {s} (Rw {'-' if rw is None else format(rw, '.3f')}, p {p:.3f})" for g, s, rw, p in self.ranking[:5])
        return [self.file, self.status, self.radiation, "" if self.qmax is None else f"{self.qmax:g}",
                b.structure_id if b else "", b.formula if b else "", "" if b is None else str(b.space_group),
                b.symbol if b else "", "" if b is None or b.rw is None else f"{b.rw:.4f}", cnn, rank,
                f"{self.screen_s:.2f}", f"{self.total_s:.2f}", self.message, self.composition, self.composition_source]


def plausible(row: IdentifyRow) -> bool:
    """A fit whose parameters are physical: positive scale, every Uiso in 0–0.1 Å², delta2 ≥ 0,
    a particle diameter (if refined) of at least 8 Å: what ``sgmine refine`` flags in its
    message. A structure that fits only with a vanishing (Uiso ≫ 0.1) or negative atom is not
    the sample's structure, however low its Rw. One rule with the refinement's own notes
    (:func:`~sgmine_diffpy.refine.physics_notes`): plausible means none of them."""
    from sgmine_diffpy.refine import physics_notes

    fit = row.fit
    if not row.ok or row.rw is None or not math.isfinite(row.rw) or fit is None or fit.scale is None:
        return False
    return not physics_notes(fit)


def to_csv(rows, columns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(r.row() for r in rows)
    return buffer.getvalue()
