"""Reading the cluster key named by `gossip.key_file`.

Shared by the daemon, which needs the keyring, and `p2pcc config --check`, which must
refuse exactly what the daemon would refuse: a check that says "ok" to a key file the
daemon cannot read would send people looking in the wrong place.
"""

from __future__ import annotations

from p2pcc.config.model import Config
from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.errors import ConfigError


def load_keyring(config: Config) -> Keyring:
    """The cluster keyring, or an empty one (unauthenticated pool) when no key is set."""
    path = config.gossip.key_file
    if path is None:
        return Keyring()
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), "gossip.key_file", f"cannot read: {error.strerror}") from None
    return parse_key_file(text, str(path))
