"""Let ``--perf-<option> VALUE`` work as well as ``--perf-<option>=VALUE``, for paths anywhere.

pytest settles the rootdir, the inifile and the first conftests from the raw arguments, before it
knows any plugin option. In ``python -m pytest -m gate --perf-model /models/marian`` the folder is
taken for a test path: the rootdir becomes /models/marian, the repository's pyproject.toml and
conftest.py are never read, and the run stops with "unrecognized arguments: --perf-model". Making
the plugin an installed one does not help on its own: it is loaded after the rootdir and inifile
have been settled on those raw arguments.

This module is the project's ``pytest11`` entry point (installed with the project by
``pip install -r requirements.txt``), so pytest loads it before it uses what the early pass
found. When a ``--perf-*`` option's separate value names an existing path, it starts the very
same command again with every ``--perf-*`` option in the ``=`` form, which pytest's early pass
leaves alone. Nothing has been printed, captured or built at that point. Only a process whose own
command line is this pytest run is restarted (never ``pytest.main`` called in-process), and only
once: an environment variable marks the restarted process, which removes it again so that the
pytest runs it starts itself (the gate's own subprocess tests) are judged afresh.
"""

from __future__ import annotations

import os
import sys

import pytest

RESTARTED = "PERF_GATE_ARGS_REWRITTEN"
PREFIX = "--perf-"


def _option_names() -> set[str]:
    # imported here, not at module level: every pytest run in the environment loads this module
    try:
        from perf_tests.harness.plugin import OPTIONS
    except ImportError:  # run outside the repository: not this suite's run, leave it alone
        return set()
    return {PREFIX + name for name in OPTIONS}


def rewritten(args: list[str], names: set[str], exists=os.path.exists) -> list[str] | None:
    """``args`` with ``--perf-x VALUE`` joined into ``--perf-x=VALUE``, or None when no separate
    value is an existing path (then pytest's early pass is not misled and nothing needs doing)."""
    out: list[str] = []
    misleading = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":  # everything after it is positional
            out += args[index:]
            break
        if arg in names and index + 1 < len(args):
            value = args[index + 1]
            misleading = misleading or exists(value)
            out.append(f"{arg}={value}")
            index += 2
            continue
        out.append(arg)
        index += 1
    return out if misleading else None


@pytest.hookimpl(wrapper=True, tryfirst=True)  # before the capture plugin redirects stdout
def pytest_load_initial_conftests(early_config: pytest.Config, parser, args):
    invocation = list(early_config.invocation_params.args)
    restarted = os.environ.pop(RESTARTED, None)
    if (not restarted and invocation == sys.argv[1:]
            and any(arg.startswith(PREFIX) for arg in invocation)):
        fixed = rewritten(invocation, _option_names())
        if fixed is not None:
            interpreter_args = sys.orig_argv[:len(sys.orig_argv) - len(invocation)]
            sys.stdout.flush()
            sys.stderr.flush()
            os.environ[RESTARTED] = "1"
            os.execv(sys.executable, [sys.executable, *interpreter_args[1:], *fixed])
    return (yield)
