"""src/iml/ig_exact_command.py: `python -m iml ig-exact`, the completeness sweep and exact IG's true error."""

import re

from conftest import run_iml

from iml import ig_exact_command, integrated_checks
from iml.quadrature import RULES


def test_it_prints_the_sweep_and_the_true_error_and_writes_two_figures(tmp_path, capsys, monkeypatch):
    # a short sweep (the full one takes most of the time)
    sweep = integrated_checks.completeness_sweep
    monkeypatch.setattr(integrated_checks, "SWEEP_STEPS", (2, 4))
    monkeypatch.setattr(integrated_checks, "completeness_sweep", lambda *a, **k: sweep(*a, steps=(2, 4), **k))
    ig_exact_command.main(["--num-images", "2", "--device", "cpu", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "completeness gap (median relative, black baseline) at m = 2, 4:" in out
    assert re.search(r"exact IG of 2 digits \(float64\): \d+, \d+ linear pieces, [\d.]+ s per digit", out)
    assert "true error ||IG - IG_exact|| / ||IG_exact|| (median) / completeness gap (median) at m = 2, 4:" in out
    assert all(f"  {rule:>13}: " in out for rule in RULES)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ig_completeness.png", "ig_exact_error.png"]


def test_it_has_no_steps_option_and_names_itself():
    parser = ig_exact_command.build_parser()
    assert parser.prog == "python -m iml ig-exact" and parser.parse_args([]).num_images == 6
    assert "--steps" not in parser.format_help()


def test_a_bad_device_is_a_bad_argument(tmp_path):
    result = run_iml("ig-exact", "--device", "tpu", "--out", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].endswith(
        "error: argument --device: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps."
    )
