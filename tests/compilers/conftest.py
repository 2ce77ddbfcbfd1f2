"""Fixtures for compiler tests: a counting fake gcc, throwaway scripts, a private cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compilers.fake_compiler import FakeCompiler, make_fake_gcc


@pytest.fixture
def fake_gcc(tmp_path: Path) -> FakeCompiler:
    return make_fake_gcc(tmp_path)


@pytest.fixture
def make_script(tmp_path: Path) -> Callable[[str, str], Path]:
    """Writes an executable /bin/sh script named `name` with `body` under tmp_path/scripts."""

    def make(name: str, body: str) -> Path:
        path = tmp_path / "scripts" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    return make


@pytest.fixture
def real_env(tmp_path: Path) -> dict[str, str]:
    """The test's own environment with a private, empty fingerprint cache."""
    return {**os.environ, "P2PCC_CACHE_DIR": str(tmp_path / "cache")}
