"""`p2pcc doctor`'s look at the cluster key: the checks the daemon makes at start.

An unkeyed pool fails (even the one `gossip.insecure = true` asked for: it is a choice
doctor cannot approve); so do a missing key, a key file others may read or write, and
one the daemon would refuse for any other reason (`load_keyring`, shared with the
daemon and `p2pcc config --check`).  Only a key this user may not read is a warning:
that is how a root-owned 0600 key looks to everyone else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from p2pcc.cli import doctor_checks as doctor
from p2pcc.cli.doctor_checks import Finding
from p2pcc.config import Config
from p2pcc.config.key_file import INSECURE_COST, load_keyring, no_key_remedy
from p2pcc.core.errors import ConfigError

CHECK = "key"
_GIVE_A_KEY = (
    "`p2pcc keygen` on one machine and `p2pcc join` on the others, then remove "
    "gossip.insecure from the configuration and reload the daemons"
)


def check_pool_key(config: Config, status: Mapping[str, Any] | None) -> Finding:
    """The cluster key as the daemon would judge it; `status` is the running daemon's."""
    gossip = config.gossip
    running_insecure = status is not None and status.get("node", {}).get("insecure") is True
    if gossip.insecure or running_insecure:
        return doctor.fail(
            CHECK,
            f"the pool runs without a key (gossip.insecure = true): {INSECURE_COST}",
            _GIVE_A_KEY,
        )
    path = gossip.key_file
    if path is None:
        return doctor.fail(
            CHECK,
            'gossip.key_file = "" without gossip.insecure: the daemon refuses to start',
            no_key_remedy(),
        )
    return _check_key_file(config, path)


def _check_key_file(config: Config, path: Path) -> Finding:
    if not os.path.lexists(path):
        return doctor.fail(
            CHECK, f"no cluster key at {path}: the daemon refuses to start", no_key_remedy()
        )
    if not os.access(path, os.R_OK, follow_symlinks=False):
        return doctor.check_key(path, readable=False)  # the mode is still checked
    try:
        load_keyring(config)
    except ConfigError as error:
        mode_finding = doctor.check_key(path)
        if mode_finding.level is doctor.Level.FAIL:
            return mode_finding  # the mode, with the chmod to run
        return doctor.fail(CHECK, str(error), "`p2pcc join --replace` installs a good key file")
    return doctor.check_key(path)
