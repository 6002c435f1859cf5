"""Result files are written whole: by one writer or by two at once, and not at all on failure."""

import json
import threading

import pytest

from perf_tests.harness.files import written_whole
from perf_tests.harness.store import write_json

pytestmark = pytest.mark.unit


def test_two_writers_at_once_each_replace_the_file_whole(tmp_path):
    path = tmp_path / "latest" / "summary.json"
    errors = []

    def write(name: str) -> None:
        for _ in range(200):
            try:
                write_json(path, {"run": name, "pad": "x" * 20_000})
            except Exception as error:  # noqa: BLE001  counted, and the test fails on it
                errors.append(error)

    writers = [threading.Thread(target=write, args=(name,)) for name in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    assert json.loads(path.read_text())["run"] in "ab"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("last night's report\n")
    with pytest.raises(RuntimeError), written_whole(path) as tmp:
        tmp.write_text("half of tonight's")
        raise RuntimeError("the disk filled up")
    assert path.read_text() == "last night's report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_figure_that_is_no_finite_number_is_written_as_null(tmp_path):
    """A growth from 0 MB is infinite; Python would write Infinity, which is not JSON."""
    path = tmp_path / "summary.json"
    write_json(path, {"factor": float("inf"), "p": [float("nan"), 0.5], "run": (1, -float("inf"))})

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "factor": None, "p": [None, 0.5], "run": [1, None]}
