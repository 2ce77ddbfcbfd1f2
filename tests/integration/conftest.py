"""Integration tests drive real processes and namespaces; they need root for the bed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.netbed import TestBed


@pytest.fixture
def bed() -> Iterator[TestBed]:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    with TestBed() as test_bed:
        yield test_bed
