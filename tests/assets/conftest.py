"""Fixtures of the asset tests."""

from __future__ import annotations

import secrets

import pytest

from tests.contract.seaweed import SeaweedS3


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The ``assets:`` section of each backend: the default local directory (beside the job
    store), or a real S3 server (SeaweedFS) under a prefix of the test's own."""
    if request.param == "local":
        return {}
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    return seaweed.section(f"{secrets.token_hex(4)}/")
