"""Where sgmine keeps what it computes once per machine.

One root for every cache: ``$SGMINE_CACHE`` when set, else ``$XDG_CACHE_HOME/sgmine``, else
``~/.cache/sgmine``. Below it, each user has a folder of its own: the plugin's screening curves
(``identify/``), the training datasets of ``sgmine-train dataset`` (``datasets/``) and training
runs (``runs/``).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: ``$SGMINE_CACHE``, else ``$XDG_CACHE_HOME/sgmine``, else ``~/.cache/sgmine``
    (not created here)."""
    root = os.environ.get("SGMINE_CACHE")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "sgmine"
