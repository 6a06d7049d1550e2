"""The built-in default run learns something a random network does not give: the issue's acceptance check.

It trains the `default` recipe exactly as `ijepa-train` does (a few CPU minutes), then probes the pooled
target-encoder features on held-out synthetic shapes for shape kind and object count (the Clevr/Count-like
low-level probe), against the same architecture at the released random initialisation. A falling loss
alone is no evidence: the first recipe tried here lowered the loss 20x and did not beat random init.
"""
import json

import pytest
import torch

import ijepa_hub
from ijepa_hub.eval import random_init_encoder, synthetic_probe

# Points of linear-probe top-1 over random init. Seed 0 measured +12.4 (shape) / +11.9 (count), and seeds 0-4
# at least +11.2 (docs/anticollapse-sweep.md); 8 leaves room for another machine's float rounding, which a
# 300-step run amplifies, while still failing the recipe without its objectives (seed 0: +6.2 / +0.6).
MIN_MARGIN = 8.0


@pytest.mark.slow  # 300 steps x 32 images and the probes: about 7 minutes on one thread
@pytest.mark.timeout(1800)  # past the suite's 10 min on a slower runner sharing its cores with the other slow tests
def test_default_run_beats_random_init_on_shape_and_count(tmp_path):
    recipe = ijepa_hub.load_recipe("default")
    result = ijepa_hub.train.train(recipe, out_dir=tmp_path / "run", progress=False)
    assert result.step == result.total_steps and result.losses[-1] < result.losses[0]

    model = ijepa_hub.from_pretrained(result.export_dir)
    baseline = random_init_encoder(model.config, seed=recipe.train.seed)
    report = synthetic_probe(model.encoder, baseline=baseline, cache_dir="")
    (tmp_path / "probe.json").write_text(json.dumps(report, indent=2))
    margins = {label: row["margin"]["linear_top1"] for label, row in report["labels"].items()}
    assert margins["shape"] >= MIN_MARGIN and margins["count"] >= MIN_MARGIN, json.dumps(report["labels"], indent=1)


def test_random_init_baseline_is_the_runs_starting_point():
    """The baseline is the network the default run starts from, not merely one of the same shape."""
    recipe = ijepa_hub.load_recipe("default")
    torch.manual_seed(recipe.train.seed)
    start = ijepa_hub.IJepa(recipe.model_config(), loss=recipe.optim.loss).target_encoder
    baseline = random_init_encoder(recipe.model_config(), seed=recipe.train.seed)
    for (name, a), b in zip(start.state_dict().items(), baseline.state_dict().values()):
        assert torch.equal(a, b), name


# The paper's objective alone (`default_ijepa`), seed 0, one thread: +6.2 (shape) / +0.6 (count) measured
# (benchmarks/results/sweep_default_recipe.jsonl, rows default_ijepa). It learns shape; count it barely moves, and
# seed 1 ends below its random init on both: the reason `default` adds VICReg and SIGReg terms. The bounds keep
# room for another machine's rounding while failing a run that learned nothing on shape.
MIN_SHAPE_MARGIN_PAPER_OBJECTIVE, MIN_COUNT_MARGIN_PAPER_OBJECTIVE = 3.0, -2.5


@pytest.mark.slow  # 300 steps on one thread and the probes: about 7 minutes
@pytest.mark.timeout(1800)
def test_the_papers_objective_alone_learns_shape_at_the_default_budget(tmp_path):
    recipe = ijepa_hub.load_recipe("default_ijepa")
    recipe.train.threads = 1  # the thread count of the recorded rows (a thread count changes fp32 results)
    result = ijepa_hub.train.train(recipe, out_dir=tmp_path / "run", progress=False)
    assert result.objective == "I-JEPA, the paper's objective (no extra terms)"
    model = ijepa_hub.from_pretrained(result.export_dir)
    report = synthetic_probe(model.encoder, baseline=random_init_encoder(model.config, seed=recipe.train.seed),
                             cache_dir="")
    margins = {label: row["margin"]["linear_top1"] for label, row in report["labels"].items()}
    assert margins["shape"] >= MIN_SHAPE_MARGIN_PAPER_OBJECTIVE, margins
    assert margins["count"] >= MIN_COUNT_MARGIN_PAPER_OBJECTIVE, margins
