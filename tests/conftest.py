"""Fixtures that several test files share."""
import os

import pytest

from autograder.engine import jail as jails


@pytest.fixture(scope="session")
def jail_isolation():
    """What the machine's jail gives. CI must have one: there a missing jail fails the tests
    that need it instead of skipping them."""
    found = jails.isolation()
    if not found.jailed:
        message = f"no jail on this machine: {found.reason}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
