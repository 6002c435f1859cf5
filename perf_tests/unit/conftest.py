"""Shared by the unit tests."""

import pytest

from perf_tests.harness import progress


@pytest.fixture(autouse=True)
def steps_kept_apart():
    """Steps a unit test prints (progress.outline) go to progress.STEPS, which this session's
    own gate report lists: the recorded ones are taken out again."""
    before = list(progress.STEPS)
    yield
    progress.STEPS[:] = before
