"""The proofs of peers for people: the lines under `p2pcc status`, and `p2pcc doctor
--peers` against a real control server and real distcc (a loopback port where nothing
listens plays the refusing peer)."""

from __future__ import annotations

import socket
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pcc.cli.doctor_checks import Level
from p2pcc.cli.doctor_peers import proof_finding, proof_targets_of
from p2pcc.cli.proof_report import proof_lines
from p2pcc.core.proof import Outcome, ProofResult, ProofTarget
from tests.cli.control_fixtures import UnexpectedHandler, daemon, run_cli

AT = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def entry(name: str, outcome: str | None, **fields: Any) -> dict[str, Any]:
    last = None
    if outcome is not None:
        last = {"outcome": outcome, "detail": "", "seconds": 0.042, "at": AT, "advice": ""}
        last.update(fields.pop("last", {}))
    return {
        "node_id": "ab" * 16,
        "name": name,
        "fingerprint": "0123456789abcdef",
        "language": "c",
        "compiler": "x86_64-linux-gnu-gcc-12",
        "host": "10.0.0.2:3632/1",
        "last": last,
        "excluded": outcome == "different object",
        **fields,
    }


def test_failures_get_a_line_each_different_objects_first_and_the_rest_one_line() -> None:
    document = {
        "proofs": [
            entry("ws2", "ok"),
            entry("ws3", "refused", last={"detail": "connect failed: Connection refused"}),
            entry("ws4", "different object", last={"detail": "812 bytes against 790 here"}),
            entry("ws5", None),
            entry("ws6", "ok", last={"seconds": 0.180}),
        ]
    }
    assert proof_lines(document, UTC) == [
        "proof: ws4: different object for x86_64-linux-gnu-gcc-12 at 08:00 "
        "(812 bytes against 790 here): left out of its hosts line",
        "proof: ws3: refused for x86_64-linux-gnu-gcc-12 at 08:00 "
        "(connect failed: Connection refused)",
        "proofs: 2 ok (42-180 ms), 2 failed, 1 not yet",
    ]


def test_no_line_without_targets_and_peer_text_is_escaped() -> None:
    assert proof_lines({}) == []
    assert proof_lines({"proofs": []}) == []
    hostile = entry("\x1b[2Jws9", "failed", last={"detail": "\x07bell"})
    (line, _) = proof_lines({"proofs": [hostile]}, UTC)
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "\\x1b[2Jws9" in line


def test_only_well_formed_targets_reach_distcc() -> None:
    good = entry("ws2", None)
    bad = [
        entry("ws3", None, host="10.0.0.3:3632/1 localhost/8"),  # two hosts
        entry("ws4", None, host="$(reboot):3632/1"),
        entry("ws5", None, compiler="/tmp/evil"),
        entry("ws6", None, node_id="zz"),
        entry("ws7", None, language=7),
        "not an object",
    ]
    targets = proof_targets_of({"proofs": [good, *bad]})
    assert [t.name for t in targets] == ["ws2"]
    assert proof_targets_of({"proofs": [entry("v6", None, host="[fd00::2]:3632/1,lzo")]})


@pytest.mark.parametrize(
    ("outcome", "level"),
    [
        (Outcome.OK, Level.OK),
        (Outcome.DIFFERENT, Level.FAIL),
        (Outcome.LOCAL, Level.FAIL),
        (Outcome.REFUSED, Level.WARN),
        (Outcome.NO_ANSWER, Level.WARN),
        (Outcome.TIMEOUT, Level.WARN),
    ],
)
def test_only_wrong_code_fails_a_peer_that_would_not_compile_warns(
    outcome: Outcome, level: Level
) -> None:
    target = ProofTarget(b"\xab" * 16, "ws2", 0, "0" * 16, "c", "gcc-12", "10.0.0.2:3632/1", True)
    found = proof_finding(ProofResult(target, outcome, "", 0.042, 0.0, AT))
    assert found.level is level
    assert found.check == "proof ws2 gcc-12"
    if outcome is Outcome.OK:
        assert found.message == "same object as here, 42 ms via 10.0.0.2:3632/1"


class ProofsHandler(UnexpectedHandler):
    def __init__(self, proofs: list[dict[str, Any]]) -> None:
        self.proofs = proofs

    def status(self) -> dict[str, Any]:
        node = {"name": "here", "state": "active", "serving": True}
        return {"schema": 1, "node": node, "peers": [], "proofs": self.proofs}


async def test_doctor_peers_proves_each_target_through_real_distcc(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = ProofsHandler([entry("ws2", None, host=f"127.0.0.1:{port}/1")])
    with trio.fail_after(30):
        async with daemon(runtime_dir, handler):
            status = await run_cli("doctor", "--peers", "--config", config_file)
    out, _ = capsys.readouterr()
    assert status == 1, out
    lines = out.splitlines()
    assert lines[1].startswith("ok    daemon: running as here")
    assert lines[2].startswith(
        f"warn  proof ws2 x86_64-linux-gnu-gcc-12: refused via 127.0.0.1:{port}/1 ("
    )
    assert "Connection refused" in lines[2]
    assert lines[-1] == "2 ok, 1 warning(s), 0 failure(s)"


async def test_doctor_peers_without_peers_warns(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(10):
        async with daemon(runtime_dir, ProofsHandler([])):
            status = await run_cli("doctor", "--peers", "--config", config_file)
    out, _ = capsys.readouterr()
    assert status == 1
    assert "warn  proof: no peer offers one of this machine's compilers" in out


async def test_doctor_peers_without_a_daemon_fails(
    capsys: pytest.CaptureFixture[str], config_file: str
) -> None:
    status = await run_cli("doctor", "--peers", "--config", config_file)
    out, _ = capsys.readouterr()
    assert status == 2
    assert "FAIL  daemon:" in out
    assert "proof" not in out
