"""src/iml/integrated_checks.py: IG averaged over baselines, the completeness sweep, and the checks the IG
commands print and draw (run whole in tests/iml/test_ig_checks_command.py and test_ig_exact_command.py)."""

import re
from types import SimpleNamespace

import torch
from conftest import linear_model, smooth_model

from iml.attribution import completeness_gap, make_baselines
from iml.integrated_checks import (
    completeness_sweep,
    integrated_gradients_averaged,
    randomization_check,
    report_precision,
)
from iml.integrated_fast import integrate_gradients_fast
from iml.quadrature import RULES


def check_args(tmp_path, steps=4):
    """The options of the commands that the checks read."""
    return SimpleNamespace(steps=steps, rule="right", batch_points=None, seed=0, out=tmp_path)


def test_averaging_over_noise_baselines_keeps_completeness(digits):
    net = linear_model()
    x = digits[0][:3].double()
    noise = make_baselines("noise", x, draws=4, generator=torch.Generator().manual_seed(1))
    attributions = integrated_gradients_averaged(net, x, 2, noise, steps_m=3)
    torch.testing.assert_close(attributions, (x - noise.mean(0)) * net[1].weight[2].detach().view(1, 1, 28, 28))
    assert completeness_gap(net, x, attributions, 2, noise).abs().max() < 1e-12


def test_averaging_over_one_baseline_per_image_is_plain_ig(digits):
    net = smooth_model()
    x = digits[0][:3].double()
    baseline = make_baselines("blur", x)
    torch.testing.assert_close(
        integrated_gradients_averaged(net, x, 2, baseline, steps_m=5, rule="midpoint"),
        integrate_gradients_fast(net, x, 2, steps_m=5, baseline=baseline, rule="midpoint"),
    )


def test_completeness_sweep_gives_every_rule_a_gap_that_falls_with_m(digits):
    x, labels = digits[0].double(), digits[1]
    sweep = completeness_sweep(smooth_model(), x, labels, steps=(2, 8, 32))
    assert list(sweep) == list(RULES) and all(len(gaps) == 3 for gaps in sweep.values())
    for rule in ("right", "left", "midpoint", "trapezoid"):
        gaps = sweep[rule]
        assert gaps[0] > gaps[1] > gaps[2] > 0, (rule, gaps)
    assert sweep["right"][1] / sweep["right"][2] > 3  # first order: about 4 for 4 times the steps
    assert sweep["trapezoid"][1] / sweep["trapezoid"][2] > 10  # second order: about 16
    gauss = sweep["gausslegendre"]
    assert gauss[0] > 1e-6 and gauss[1] < 1e-12 and gauss[2] < 1e-12, gauss  # exact to rounding from m = 8


def test_report_precision_prints_the_bfloat16_deviation(shipped_model, digits, capsys):
    x, labels = digits[0][:3], digits[1][:3]
    options = {"steps_m": 4, "rule": "right", "batch_points": None, "precision": "bfloat16", "compile": False}
    report_precision(shipped_model, x, labels, torch.zeros_like(x), options, count=2)
    line = capsys.readouterr().out.strip()
    pattern = (
        r"bfloat16 against float32 on the first 2 digits \(plain IG\): largest difference (\S+) "
        r"of the largest \|attribution\|, median per-image relative L2 error (\S+)"
    )
    largest, median = map(float, re.fullmatch(pattern, line).groups())
    assert 0 < largest < 0.1 and 0 < median < 0.1
    # handed the float32 attributions as the "reduced" ones, it finds no difference
    exact = integrate_gradients_fast(shipped_model, x, labels, steps_m=4)
    report_precision(shipped_model, x, labels, torch.zeros_like(x), options, reduced=exact, count=2)
    assert "largest difference 0.0e+00 of the largest |attribution|" in capsys.readouterr().out


def test_randomization_summary_leaves_constant_maps_out_and_says_how_many(shipped_model, digits, tmp_path, capsys):
    x, labels = digits[0][:1], digits[1][:1]
    randomization_check(check_args(tmp_path), shipped_model, x, labels)
    clean = capsys.readouterr().out.strip()
    assert clean.startswith("randomisation test, mean Spearman correlation of |IG| with the trained model's: trained")
    assert "constant maps" not in clean
    # a black image has no pixel that differs from the black baseline: no rank order at any of the 6 stages
    black = torch.zeros_like(x)
    paths = randomization_check(
        check_args(tmp_path),
        shipped_model,
        torch.cat([x, black]),
        torch.cat([labels, labels]),
    )
    summary = capsys.readouterr().out.strip()
    assert "nan" not in summary
    assert summary == clean + " (6 constant maps without a rank order left out)"
    assert [p.name for p in paths] == ["ig_randomization.png", "ig_randomization_maps.png"]
    assert all(p.stat().st_size > 0 for p in paths)
