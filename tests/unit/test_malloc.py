"""malloc.limit_arenas: one arena on glibc, the operator's MALLOC_ARENA_MAX kept."""

from __future__ import annotations

from pacslb.malloc import limit_arenas


def test_limit_arenas_on_glibc(monkeypatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is True  # Debian's glibc: mallopt(M_ARENA_MAX) accepted


def test_the_environment_wins(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
