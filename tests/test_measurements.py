"""The result pages are rendered from the JSON lines, and the learning verdict is the rule the
page states."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pages_are_what_their_measurements_render_to():
    learning, measurements = load("learning_check"), load("render_measurements")
    assert (ROOT / "docs" / "results.md").read_text() == learning.render(learning.records()), \
        "docs/results.md is stale: python benchmarks/learning_check.py --report"
    assert (ROOT / "docs" / "benchmarks.md").read_text() == measurements.render(), \
        "docs/benchmarks.md is stale: python benchmarks/render_measurements.py"
    assert len((ROOT / "docs" / "results.md").read_text().splitlines()) < 200


def test_a_method_passes_by_the_bar_and_two_standard_errors():
    learning = load("learning_check")
    baseline = [0.26, 0.27, 0.28]  # mean 0.27, sd 0.01: standard error 0.0058
    lead, passes = learning.verdict([0.33, 0.34], baseline)  # sd 0.0071 over 2 runs: 0.005
    assert lead == pytest.approx(0.065) and passes
    lead, passes = learning.verdict([0.30, 0.32], baseline)  # a lead of 0.04 and errors of 0.0116: 2 SE 0.023
    assert lead == pytest.approx(0.04) and passes
    assert not learning.verdict([0.30, 0.31], baseline)[1]  # a lead of 0.035: under the bar
    # one run: the binomial error on 500 images, sqrt(0.31 x 0.69 / 500) = 0.021, so 2 SE = 0.043
    assert not learning.verdict([0.31], baseline)[1] and learning.verdict([0.34], baseline)[1]


def test_superseded_runs_leave_the_page_and_stay_in_the_file():
    learning = load("learning_check")
    base = {"kind": "random-init", "arch": "r18", "resolution": 64, "device": "cpu", "seed": 0, "knn": 0.2, "linear": 0.2}
    run = {"kind": "trained", "arch": "r18", "resolution": 64, "device": "cpu", "seed": 0, "knn": 0.4, "linear": 0.4,
           "schedule": "short64", "epochs": 10, "minutes": 5, "settings": ""}
    page = learning.render([base, run | {"method": "byol"}, run | {"method": "old_byol", "superseded": "replaced"}])
    assert "| byol |" in page and "old_byol" not in page and "1 runs of code or configs replaced since" in page
    marked = [r for r in learning.records() if r.get("superseded")]
    assert marked and all(r["settings"] for r in marked)  # each says in its settings what it was
