"""The runtime directory is made by the daemon, or refused with one message that says
what to fix: another user's, writable by others, a link or not a directory at all."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from p2pcc.core.errors import P2pccError
from p2pcc.daemon.runtime_dir import prepare_runtime_dir

OTHER_UID = 65534  # nobody: any uid but the daemon's


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


def existing(tmp_path: Path, dir_mode: int) -> Path:
    """A runtime directory that is there before the daemon starts, with `dir_mode`."""
    path = tmp_path / "p2pcc"
    path.mkdir()
    path.chmod(dir_mode)
    return path


def test_a_missing_directory_is_made_0755_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "parent" / "p2pcc"
    old_umask = os.umask(0o077)
    try:
        prepare_runtime_dir(path)
    finally:
        os.umask(old_umask)
    assert path.is_dir()
    assert (path.stat().st_uid, mode(path)) == (os.geteuid(), 0o755)


@pytest.mark.parametrize("existing_mode", [0o755, 0o700, 0o711])
def test_an_own_directory_no_one_else_may_write_is_taken_as_it_is(
    tmp_path: Path, existing_mode: int
) -> None:
    path = existing(tmp_path, existing_mode)
    (path / "state").write_text("kept")
    prepare_runtime_dir(path)
    assert mode(path) == existing_mode
    assert (path / "state").read_text() == "kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another uid needs root")
def test_another_users_directory_is_refused(tmp_path: Path) -> None:
    path = existing(tmp_path, 0o755)
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(P2pccError) as refused:
        prepare_runtime_dir(path)
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert str(refused.value) == (
        f"the runtime directory {path} belongs to nobody (uid {OTHER_UID}), not to the "
        f"daemon's user {me} (uid {os.geteuid()}): whoever made it could steer this "
        "machine's builds; remove it (the daemon makes its own) or set runtime_dir to a "
        "directory of the daemon's user"
    )
    assert path.stat().st_uid == OTHER_UID  # refused, not repaired


@pytest.mark.parametrize("writable_mode", [0o775, 0o757, 0o1777])
def test_a_directory_group_or_others_may_write_is_refused(
    tmp_path: Path, writable_mode: int
) -> None:
    path = existing(tmp_path, writable_mode)
    with pytest.raises(P2pccError) as refused:
        prepare_runtime_dir(path)
    assert str(refused.value) == (
        f"the runtime directory {path} is writable by group or others "
        f"(mode {writable_mode:04o}), who could steer this machine's builds: "
        f"`chmod go-w {path}`, or remove it (the daemon makes its own)"
    )
    assert mode(path) == writable_mode


def test_a_link_is_refused_and_what_it_leads_to_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    path = tmp_path / "p2pcc"
    path.symlink_to(target)
    with pytest.raises(P2pccError) as refused:
        prepare_runtime_dir(path)
    assert str(refused.value) == (
        f"the runtime directory {path} is a symbolic link, which the daemon does not "
        "follow: remove it (the daemon makes one)"
    )
    assert mode(target) == 0o700
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nothing")
    with pytest.raises(P2pccError, match="is a symbolic link"):
        prepare_runtime_dir(dangling)
    assert not (tmp_path / "nothing").exists()  # not made through the link


def test_a_file_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p2pcc"
    path.write_text("")
    with pytest.raises(P2pccError, match=r"p2pcc is not a directory: remove it"):
        prepare_runtime_dir(path)


def test_a_directory_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(P2pccError) as refused:
        prepare_runtime_dir(tmp_path / "file" / "p2pcc")
    assert str(refused.value) == (
        f"cannot create the runtime directory {tmp_path}/file/p2pcc: "
        f"[Errno 17] File exists: '{tmp_path}/file'"
    )
