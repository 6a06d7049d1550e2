"""The README's tour, in a tiny configuration: every command of benchmarks/tour.py's STEPS runs, in order, from
one working folder, and prints the lines the README quotes (so the tour cannot rot)."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import tour  # noqa: E402

pytest.importorskip("matplotlib")
pytest.importorskip("onnx")


def test_the_readme_shows_the_tours_commands_in_order():
    readme = (ROOT / "README.md").read_text()
    tour_text = readme[readme.index("## Tour"):]
    positions = [tour_text.find(step.shown() if step.name != "classify" else "classify(") for step in tour.STEPS]
    assert -1 not in positions and positions == sorted(positions), [s.shown() for s in tour.STEPS]
    assert readme.index("## Tour") < readme.index("## Install")


def test_the_tour_runs_in_a_tiny_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = {}
    for step in tour.STEPS:
        code, out = tour.run_in_process(step, tiny=True)
        assert code == 0, (step.name, out)
        printed[step.name] = tour.key_lines(step, out)
        assert printed[step.name], (step.name, out)
    assert re.search(r"steps 0 -> 2 of \d+, loss .*online k-NN \(step 0 -> 2\)", printed["train"][0])
    assert "24 train / 12 test images" in printed["synthetic"][0] and len(printed["synthetic"]) == 7
    assert "8 train / 4 test images" in printed["seg"][0] and (tmp_path / "seg.png").is_file()
    assert "val top-1" in printed["finetune"][0] and (tmp_path / "runs/ft/model/config.json").is_file()
    assert re.match(r"\[\[\('\w+', 0\.\d+\), \('\w+', 0\.\d+\)\]\]", printed["classify"][0])
    assert "onnx" in printed["export"][0] and list((tmp_path / "out").glob("*.onnx"))
