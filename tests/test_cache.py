"""The cache root: one home for every cache sgmine and its plugin keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgmine.cache import cache_root


def test_cache_root_follows_sgmine_cache_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("SGMINE_CACHE")
    assert cache_root() == tmp_path / "xdg" / "sgmine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "sgmine"


def test_the_plugin_caches_its_curves_under_the_same_root(tmp_path, monkeypatch):
    screen = pytest.importorskip("sgmine_diffpy.screen")
    monkeypatch.setenv("SGMINE_CACHE", str(tmp_path))
    assert screen.cache_dir() == tmp_path / "identify"
