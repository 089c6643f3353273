"""A PNG of a fit: measured G(r), the refined model, and their difference below."""

from __future__ import annotations

import os

from sgmine_diffpy.refine import FitResult


def plot_fit(result: FitResult, path: str | os.PathLike, *, rank_name: str = "model rank") -> None:
    """Draw ``result`` (a successful fit) to the PNG file ``path``.

    The title names the data, the structure, its group, its rank and Rw; ``rank_name`` says
    what ``result.model_rank`` ranks: the model's candidate groups (``sgmine refine``) or, for
    ``sgmine identify``, the screening (``"screen rank"``).
    """
    if not result.ok or result.r is None:
        raise ValueError(f"{result.cif}: no fitted curve to plot ({result.message or 'fit failed'})")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diff = result.g_obs - result.g_calc
    offset = result.g_obs.min() - 1.1 * diff.max()
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    ax.plot(result.r, result.g_obs, "o", ms=2.5, mfc="none", color="tab:blue", label="data")
    ax.plot(result.r, result.g_calc, "-", lw=1.2, color="tab:red", label="model")
    ax.plot(result.r, diff + offset, "-", lw=1.0, color="tab:green", label="difference (offset)")
    ax.axhline(offset, color="0.6", lw=0.6, ls="--")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("G(r) (Å$^{-2}$)")
    ax.set_xlim(result.rmin, result.rmax)
    cif = os.path.basename(result.cif)
    rank = f"{rank_name} {result.model_rank}" if result.model_rank is not None else "not ranked by the model"
    ax.set_title(
        f"{os.path.basename(result.source)} vs {cif}: {result.symbol} (#{result.space_group}), "
        f"{rank}, Rw = {result.rw:.3f}",
        fontsize=10,
    )
    ax.legend(loc="upper right", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
