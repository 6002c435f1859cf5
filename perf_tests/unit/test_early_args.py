"""The space form of --perf-* options is rewritten to the = form only where pytest would err."""

import pytest

from perf_tests.harness.early_args import _option_names, rewritten

pytestmark = pytest.mark.unit

NAMES = {"--perf-model", "--perf-limits", "--perf-threads"}


def test_an_existing_path_as_a_separate_value_is_joined():
    args = ["-m", "gate", "--perf-model", "/models/marian", "--perf-threads", "2", "perf_tests"]
    assert rewritten(args, NAMES, exists=lambda value: value == "/models/marian") == [
        "-m", "gate", "--perf-model=/models/marian", "--perf-threads=2", "perf_tests"]


@pytest.mark.parametrize("args", [
    ["-m", "gate", "--perf-model", "t5-small"],        # a hub id: not a path, no harm done
    ["--perf-model=/models/marian"],                   # already the = form
    ["--", "--perf-model", "/models/marian"],          # after --, everything is positional
    ["--perf-model"],                                  # no value: pytest says so itself
    ["--perf-unknown", "/models/marian"],              # not ours: left to pytest
])
def test_nothing_to_do(args):
    assert rewritten(args, NAMES, exists=lambda value: value != "t5-small") is None


def test_every_option_of_the_plugin_is_known():
    assert {"--perf-model", "--perf-limits", "--perf-cache-dir", "--perf-results-dir",
            "--perf-baseline"} <= _option_names()
