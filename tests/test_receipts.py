"""Every measured figure in README.md and docs/*.md sits under a results file that records it
(the convention: docs/performance.md, "Receipts"; the checker: benchmarks/receipts.py)."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import receipts  # noqa: E402


def test_every_figure_in_the_readme_and_docs_has_a_receipt_that_records_it():
    assert receipts.problems() == []


@pytest.mark.parametrize(("text", "figures"), [
    ("4 min 11 s: shape 23.4 -> 35.2 %", ["4 min 11 s", "23.4", "35.2 %"]),
    ("margins -2.2 and +11.7, 2.9x faster, 48 img/s, 170 KiB", ["-2.2", "+11.7", "2.9x", "48 img/s", "170 KiB"]),
    ("3-7 images/s; 114.7 ms; 9.05e-7", ["3 images/s", "7 images/s", "114.7 ms", "9.05e-7"]),
    ("top-1 %, 300 steps at 64 px, 16 x 16 grid, 8x8 patches, torch 2.14.1, Python 3.10, 1e-6, seeds 0-4", []),
])
def test_what_counts_as_a_figure(text, figures):
    assert [f.text for f in receipts.figures(text)] == figures


@pytest.mark.parametrize(("text", "numbers", "ok"), [
    ("0.335", [0.3351], True), ("0.335", [0.3356], False),
    ("4 min 11 s", [251.0], True), ("4 min 1 s", [251.0], False),
    ("57.4 %", [0.574], True), ("114.7 ms", [0.11470], True), ("58 s", [57.6], True),
    ("+12.4", [12.4], True), ("-2.2", [2.2], False), ("2.2", [-2.2], True),
    ("about 390 s", [383.0], True), ("390 s", [383.0], False),
])
def test_a_figure_is_recorded_when_a_number_rounds_to_it(text, numbers, ok):
    (figure,) = receipts.figures(text)
    assert receipts.is_recorded(figure, receipts._sorted_numbers(numbers)) is ok


def _page(tmp_path, text, results=None):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(text)
    for name, data in (results or {}).items():
        path = tmp_path / "benchmarks" / "results" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return receipts.problems(tmp_path)


FULL = {"command": "python benchmarks/x.py", "commit": "abc1234", "machine": "x86_64, 2 cores", "threads": 1}


def test_a_marker_covers_its_block_up_to_the_next_heading(tmp_path):
    text = ("# A\n\n<!-- receipt: benchmarks/results/x.json -->\nIt took 58 s (0.335 mIoU).\n\n"
            "## B\n\nNo receipt here: 0.5 s.\n")
    assert _page(tmp_path, text, {"x.json": {**FULL, "seconds": 57.6, "miou": 0.3351}}) == [
        "README.md:8: figure '0.5 s' has no receipt"]


def test_a_figure_the_file_does_not_hold_and_missing_keys_are_reported(tmp_path):
    text = "See [the results](benchmarks/results/x.json): 0.336.\n"
    found = _page(tmp_path, text, {"x.json": {"miou": 0.3351, "threads": 2}})
    assert found == ["benchmarks/results/x.json: records no command, commit, machine (benchmarks/common.py environment())",
                     "README.md:1: figure '0.336' is not in benchmarks/results/x.json"]


def test_every_jsonl_row_must_record_the_keys(tmp_path):
    rows = json.dumps(FULL) + "\n" + json.dumps({"threads": 1, "v": 1.5}) + "\n"
    assert receipts.missing_keys(_write(tmp_path / "r.jsonl", rows)) == ["command", "commit", "machine"]


def _write(path, text):
    path.write_text(text)
    return path


def test_a_source_marker_exempts_quoted_facts_and_must_cite(tmp_path):
    text = "<!-- source: paper, Table 1 -->\n79.3 % top-1.\n\n<!-- source: -->\n81.1 %\n"
    assert _page(tmp_path, text) == ["README.md:4: a source marker must cite its source"]


def test_a_generated_table_must_repeat_what_its_script_prints(tmp_path):
    script = tmp_path / "benchmarks" / "t.py"
    script.parent.mkdir(parents=True)
    script.write_text("print('| a | b |')\nprint('|---|---|')\nprint('| x | +1.5 |')\n")
    marker = "<!-- receipt: benchmarks/results/x.json via benchmarks/t.py -->\n"
    ok = _page(tmp_path, marker + "| a | b |\n|---|---|\n| x | +1.5 |\n", {"x.json": FULL})
    assert ok == []
    (tmp_path / "README.md").write_text(marker + "| a | b |\n|---|---|\n| x | +1.6 |\n")
    receipts.command_output.cache_clear()
    bad = receipts.problems(tmp_path)
    assert any("table row not as" in p for p in bad) and any("'+1.6' is not in" in p for p in bad)
