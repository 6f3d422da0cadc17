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


@pytest.fixture(scope="session")
def fork_server_here(jail_isolation):
    """The fork server (engine/zygote.py) can run here. CI runs as root with writable cgroups:
    there a missing one fails the tests that need it instead of skipping them."""
    from autograder.engine import zygote

    why = zygote.unsupported(jail_isolation)
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root with writable cgroups: the fork server must run ({why})")
        pytest.skip(f"no fork server here: {why}")
