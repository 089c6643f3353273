"""Hermann–Mauguin symbols of space groups, from spglib's tables (never typed by hand)."""

from __future__ import annotations

from functools import lru_cache

#: The reference's eight space groups (Liu et al. 2019), in the CNN's output order: the default
#: classes of ``sgmine-train dataset --space-groups`` and of a model built without a dataset.
REFERENCE_GROUPS: tuple[int, ...] = (2, 14, 15, 62, 139, 194, 225, 227)

#: spglib numbers the 530 Hall settings 1..530; the first setting of each group is the standard one.
N_HALL = 530


@lru_cache(maxsize=1)
def _standard_symbols() -> dict[int, str]:
    import warnings

    import spglib

    symbols: dict[int, str] = {}
    for hall in range(1, N_HALL + 1):
        with warnings.catch_warnings():  # spglib 2.x warns about its old error handling on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            sg = spglib.get_spacegroup_type(hall)
        number = sg.number if hasattr(sg, "number") else sg["number"]
        short = sg.international_short if hasattr(sg, "international_short") else sg["international_short"]
        symbols.setdefault(int(number), str(short))
    return symbols


def hm_symbol(space_group: int) -> str:
    """Short Hermann–Mauguin symbol of ``space_group`` (1–230), e.g. ``225 -> "Fm-3m"``."""
    number = int(space_group)
    if not 1 <= number <= 230:
        raise ValueError(f"space groups are numbered 1–230, got {space_group}")
    return _standard_symbols()[number]


def hm_symbols(space_groups: "list[int] | tuple[int, ...]") -> tuple[str, ...]:
    """Short Hermann–Mauguin symbols of several space groups, in the same order."""
    return tuple(hm_symbol(g) for g in space_groups)
