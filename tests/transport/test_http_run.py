"""``fit_open_files`` (DS-2 max connections): the soft open-file limit is raised so that the
configured connections fit; when the hard limit is lower, the cap that fits is returned and
a warning says how to raise it. Each case in a child process with its own limits."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest

from bastion.transport.http_run import RESERVED_FILES

CODE = """
    import logging, resource, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    from bastion.transport.http_run import fit_open_files
    print(fit_open_files(int(sys.argv[1])))
    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _fit(connections: int, soft: int, hard: int) -> list[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CODE), str(connections)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limit,  # the child's limits, set before it runs
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def test_ds2_the_soft_limit_is_raised_to_fit_the_connections() -> None:
    hard = _hard()
    if hard < 5000 + RESERVED_FILES:
        pytest.fail(f"this machine's hard open-file limit ({hard}) is too low for the test")
    *warnings, fits, soft = _fit(5000, 1024, hard)
    assert (int(fits), int(soft)) == (5000, 5000 + RESERVED_FILES)
    assert warnings == []


def test_ds2_a_low_hard_limit_caps_the_connections_with_a_warning() -> None:
    *warnings, fits, soft = _fit(5000, 512, 1024)
    assert (int(fits), int(soft)) == (1024 - RESERVED_FILES, 1024)
    assert len(warnings) == 1
    assert "max_connections 5000" in warnings[0]
    assert "ulimit -Hn" in warnings[0]


def test_ds2_a_soft_limit_already_large_enough_is_left_alone() -> None:
    hard = _hard()
    soft = min(hard, 4096)
    *warnings, fits, after = _fit(100, soft, hard)
    assert (int(fits), int(after)) == (100, soft)
    assert warnings == []
