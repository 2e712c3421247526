"""Run one test inside a private network namespace that has a non-loopback IPv4 address, so that
checks that depend on the client's address (loopback or not) run on every machine, CI included.

The namespace is made with `unshare --net` (root, or a user namespace); its loopback interface
is brought up and given `NAMESPACE_ADDRESS` besides 127.0.0.1. A client that connects to that
address is seen by the server as a non-loopback peer, and the traffic never leaves the namespace.
The test's outer run starts the inner one (`pytest NODEID` in the namespace) and passes if it did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.serverproc import REPO, source_env
from tests.tools import cannot_run_here

#: Set in the inner run: the non-loopback address the test should use.
ADDRESS_ENV = "DIGITS_TEST_NON_LOOPBACK_ADDRESS"
NAMESPACE_ADDRESS = "10.87.0.1"
SETUP = f"ip link set lo up && ip addr add {NAMESPACE_ADDRESS}/32 dev lo"


def non_loopback_address(nodeid: str) -> str | None:
    """Inside the namespace: the address to use. Outside: runs test `nodeid` inside a new namespace
    and returns None (the caller returns: the inner run did the test). Fails where no namespace
    can be made in CI; skips elsewhere."""
    inner = os.environ.get(ADDRESS_ENV)
    if inner:
        return inner
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    probe = None if missing else subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", SETUP], capture_output=True, text=True, timeout=30, check=False)
    if missing or probe is None or probe.returncode != 0:
        cannot_run_here(f"cannot make a network namespace: {missing or probe.stderr.strip()}")
    command = f'{SETUP} && exec "$0" -m pytest -q "$1"'
    result = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", command, sys.executable, nodeid],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False, env=source_env({ADDRESS_ENV: NAMESPACE_ADDRESS}),
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    return None
