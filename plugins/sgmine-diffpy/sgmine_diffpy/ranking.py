"""The space-group ranking of ``sgmine identify``: refined structures that fit lead, in order of
fit (:func:`fit_order`, with a composition) or of the CNN's probability
(:func:`combined_ranking`), the higher symmetry winning a tie; the CNN's ranking stands where
nothing fits. And the file's answer (:func:`best_structure`)."""

from __future__ import annotations

import math

from sgmine_diffpy.rows import GOOD_FIT_RW, IdentifyRow, plausible
from sgmine_diffpy.supergroups import point_group_order, symmetry_at


def combined_ranking(rows: list[IdentifyRow], cnn: list[tuple[int, str, float]], good_fit: float = GOOD_FIT_RW,
                     within: str = "cnn", elements: set[str] | None = None) -> list[tuple[int, str, float | None, float]]:
    """The final space-group ranking, best first, as ``[(space_group, symbol, rw, p_cnn)]``
    (``rw``: the group's best plausible refined Rw, None without one; ``p_cnn``: the CNN's
    probability, 0 for groups outside its candidates). See the module text:

    1. groups with a plausible fit (:func:`plausible`) of Rw ≤ ``good_fit``, by the CNN's
       probability, then by Rw (``within="rw"``: by Rw, then by probability);
    2. every other group by the CNN's probability, then by its best plausible Rw (none last).

    So where nothing fits, the CNN's ranking stands; a refinement moves a group ahead of it
    only by fitting the data.

    ``within="fit"`` (what identify uses when it knows the sample's composition) orders the
    fitting groups by :func:`fit_order` instead: the best fit first, whatever its group, unless
    another group fits about as well (:data:`TIE_RW`), where the one whose structure has the
    sample's elements (``elements``), then the higher symmetry, then the CNN decides."""
    if within not in ("cnn", "rw", "fit"):
        raise ValueError(f"within must be 'cnn', 'rw' or 'fit', not {within!r}")
    if within == "fit":
        return fit_order(rows, cnn, good_fit=good_fit, elements=elements)
    best = {g: (r.rw, r.symbol) for g, r in best_by_group(rows).items()}
    prob = {g: p for g, _, p in cnn}
    symbols = {g: s for g, s, _ in cnn}

    def key(g: int):
        rw, p = best[g][0] if g in best else math.inf, prob.get(g, 0.0)
        if rw <= good_fit:
            return (0, -p, rw, g) if within == "cnn" else (0, rw, -p, g)
        return (1, -p, rw, g)

    return [(g, best[g][1] if g in best else symbols.get(g, ""), best[g][0] if g in best else None, prob.get(g, 0.0))
            for g in sorted(set(best) | set(prob), key=key)]


#: Two fits whose Rw differ by at most this count as equally good (:func:`fit_order`): a
#: structure and its ordered superstructure or subgroup description refine to within about
#: 0.01 of each other (Si.gr: diamond 0.084, Zn3CdSe4-type Amm2 0.077), their extra parameters
#: buying the difference. Set from that, not tuned on the measured files.
TIE_RW = 0.02


def row_elements(row: IdentifyRow) -> set[str]:
    """The elements of a row's formula (empty when it does not parse)."""
    from sgmine.composition import CompositionError, parse_formula

    try:
        return set(parse_formula(row.formula))
    except CompositionError:
        return set()


#: Distance tolerance (Å) with which a refined structure's own symmetry is found
#: (:func:`lift_symmetry`): refined coordinates and cell lengths scatter by a few 0.01 Å.
LIFT_SYMPREC = 0.05


def lift_symmetry(row: IdentifyRow) -> None:
    """Where a refined structure has higher symmetry than the group it was refined in (an
    fcc metal refined in its I4/mmm description, a tetragonal crystal in an orthorhombic
    subgroup whose a and b refined equal), give the row that group and say so: the
    structure, not its description, is the answer."""
    structure = getattr(row.fit, "structure", None)
    if not row.ok or structure is None or row.space_group is None:
        return
    found = symmetry_at(structure, LIFT_SYMPREC)
    if found is None or found[0] == row.space_group or point_group_order(found[0]) <= point_group_order(row.space_group):
        return
    note = f"the refined structure has {found[1]} symmetry within {LIFT_SYMPREC:g} Å (refined in {row.symbol})"
    row.space_group, row.symbol = found
    row.message = "; ".join(m for m in (note, row.message) if m)


def best_by_group(rows: list[IdentifyRow], keep=None) -> dict[int, IdentifyRow]:
    """The plausible row (:func:`plausible`) of lowest Rw in each space group, of the rows for
    which ``keep(row)`` is true (all where None)."""
    found: dict[int, IdentifyRow] = {}
    for r in rows:
        if plausible(r) and (keep is None or keep(r)) and (r.space_group not in found or r.rw < found[r.space_group].rw):
            found[r.space_group] = r
    return found


def fit_order(rows: list[IdentifyRow], cnn: list[tuple[int, str, float]], *, good_fit: float = GOOD_FIT_RW,
              elements: set[str] | None = None) -> list[tuple[int, str, float | None, float]]:
    """Space groups best first as ``[(space_group, symbol, rw, p_cnn)]``: the groups with a
    plausible fit of Rw ≤ ``good_fit`` in order of fit, then the rest by the CNN's probability.

    With the sample's ``elements``, the groups whose fitting structure is made of exactly those
    elements come first (a structure of the sample's chemistry that fits is the answer; other
    chemistry fits only when none of it does: a second phase, a wrong composition), then the
    other fitting groups. Within each part, the candidates for the next place are the groups
    whose best Rw is within :data:`TIE_RW` of the best remaining one; of them the one of higher
    symmetry (:func:`point_group_order`: fcc over its I4/mmm description, diamond over its
    ordered Amm2 superstructure) comes first, then the CNN's more probable, then the lower Rw."""
    prob = {g: p for g, _, p in cnn}
    symbols = {g: s for g, s, _ in cnn}

    def ordered(best: dict[int, IdentifyRow], groups: set[int]) -> list[int]:
        order: list[int] = []
        groups = set(groups)
        while groups:
            lowest = min(best[g].rw for g in groups)
            tied = [g for g in groups if best[g].rw <= lowest + TIE_RW]
            pick = min(tied, key=lambda g: (-point_group_order(g), -prob.get(g, 0.0), best[g].rw, g))
            order.append(pick)
            groups.discard(pick)
        return order

    best = best_by_group(rows)
    chemistry = best_by_group(rows, lambda r: row_elements(r) == set(elements)) if elements else {}
    chem_fitting = {g for g, r in chemistry.items() if r.rw <= good_fit}
    order = ordered(chemistry, chem_fitting)
    order += ordered(best, {g for g, r in best.items() if r.rw <= good_fit} - chem_fitting)
    rest = sorted((set(best) | set(prob)) - set(order),
                  key=lambda g: (-prob.get(g, 0.0), best[g].rw if g in best else math.inf, g))
    shown = {g: (chemistry[g] if g in chem_fitting else best[g]) for g in best}
    return [(g, shown[g].symbol if g in shown else symbols.get(g, ""), shown[g].rw if g in shown else None,
             prob.get(g, 0.0)) for g in order + rest]


def best_structure(rows: list[IdentifyRow], ranking, elements: set[str] | None = None) -> IdentifyRow | None:
    """The answer: the best plausible fit in the top group of the combined ranking (made of the
    sample's ``elements`` where one such fits), else the best plausible fit, else the best fit
    at all (see :data:`GOOD_FIT_RW` for whether it fits)."""
    fitted = [r for r in rows if r.ok and r.rw is not None and math.isfinite(r.rw)]
    top = [r for r in fitted if ranking and r.space_group == ranking[0][0] and plausible(r)]
    own = [r for r in top if elements and row_elements(r) == set(elements) and r.rw <= GOOD_FIT_RW]
    for pick in (own, top,
                 [r for r in fitted if plausible(r)], fitted):
        if pick:
            return min(pick, key=lambda r: r.rw)
    return None
