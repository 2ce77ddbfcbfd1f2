"""Fixtures for CLI tests: never the machine's configuration; a runtime dir of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2pcc import paths


@pytest.fixture(autouse=True)
def no_real_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the machine's or the user's configuration."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", tmp_path / "etc" / "p2pcc.toml")
    monkeypatch.delenv("P2PCC_CONFIG", raising=False)
    monkeypatch.delenv("P2PCC_RUNTIME_DIR", raising=False)


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def config_file(tmp_path: Path, runtime_dir: Path) -> str:
    path = tmp_path / "p2pcc.toml"
    path.write_text(f"runtime_dir = {json.dumps(str(runtime_dir))}\n")
    return str(path)
