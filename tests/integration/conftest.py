"""Integration tests drive real processes and namespaces; they need root for the bed."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc.core.auth import format_key_line
from p2pcc.daemon.metrics.calibrate import CALIBRATION_TIMEOUT
from tests.integration.netbed import TestBed
from tests.integration.office import Office, open_office


@pytest.fixture
def bed() -> Iterator[TestBed]:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed() as test_bed:
        yield test_bed


#: Every `shared_tmp` directory of the session, removed once more when it ends.
_SHARED_DIRS: list[Path] = []


#: A calibration's work directory unchanged for this long is no live calibration's: each
#: ends within `CALIBRATION_TIMEOUT` and writes its files there while it runs.
_DEAD_CALIBRATION = 2 * CALIBRATION_TIMEOUT


@pytest.fixture(scope="session", autouse=True)
def _sweep_shared_dirs() -> Iterator[None]:
    """A test's pool fixture asks for the bed before `shared_tmp`, so the directory is
    removed while the bed's daemons still run, and one calibrating then writes its cache
    back into it: seven or eight such directories were left in /tmp by each run of the
    suite.  By the session's end every bed is closed and every daemon gone.

    A bed's close kills its daemons, and one killed while it calibrates leaves its work
    directory (`p2pcc-calibrate-*`, two or three a run): those written since the session
    began and no longer changing go too."""
    began = time.time()
    yield
    for path in _SHARED_DIRS:
        shutil.rmtree(path, ignore_errors=True)
    for path in Path(tempfile.gettempdir()).glob("p2pcc-calibrate-*"):
        with contextlib.suppress(OSError):
            changed = path.lstat().st_mtime
            if began <= changed < time.time() - _DEAD_CALIBRATION and path.is_dir():
                shutil.rmtree(path)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory other users can enter: distccd drops to its own user and
    must reach its log directory (pytest's tmp_path lives under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="p2pcc-test-"))
    path.chmod(0o755)
    _SHARED_DIRS.append(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A new cluster key file for one test's pool, mode 0600 as the daemon wants it."""
    path = tmp_path / "cluster.key"
    path.write_text(format_key_line(os.urandom(32)) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    """The four-workstation office of the real-build tests, one per test module: each
    module's tests start with `office.ready()`, which restarts what an earlier one broke."""
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with open_office() as opened:
        yield opened


@pytest.fixture
def readable_secrets() -> Iterator[dict[str, bytes]]:
    """Two files distccd's user can read, by path: one in /etc, one in a home directory;
    what `.incbin` in a served job would steal."""
    token = secrets.token_hex(8)
    etc = Path(f"/etc/p2pcc-test-secret-{token}")
    home = Path(f"/home/p2pcc-test-{token}")
    created = {etc: f"ETC-SECRET-{token}".encode(), home / "notes": f"HOME-{token}".encode()}
    try:
        home.mkdir(mode=0o755, parents=True)
        for path, data in created.items():
            path.write_bytes(data)
            path.chmod(0o644)
        yield {str(path): data for path, data in created.items()}
    finally:
        etc.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
