"""src/iml/ig_checks_command.py: `python -m iml ig-checks`, the randomization test and pixel deletion."""

import re

from conftest import argparse_error, run_iml

from iml import ig_checks_command


def test_parser_defaults_and_ranges(capsys):
    parser = ig_checks_command.build_parser()
    args = parser.parse_args([])
    assert (args.num_images, args.steps, args.rule, parser.prog) == (100, 50, "right", "python -m iml ig-checks")
    assert "must be an integer from 1 to 100000, got 0" in argparse_error(parser, ["--steps", "0"], capsys)


def test_it_prints_both_checks_and_writes_three_figures(tmp_path, capsys):
    ig_checks_command.main(["--num-images", "3", "--steps", "4", "--device", "cpu", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "randomisation test, mean Spearman correlation" in out
    assert re.search(
        r"pixel deletion, .*: Integrated Gradients \d\.\d{3}, plain gradient \d\.\d{3}, random \d\.\d{3}$",
        out.strip().splitlines()[-4],
    )
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "ig_deletion.png",
        "ig_randomization.png",
        "ig_randomization_maps.png",
    ]


def test_as_a_command_it_refuses_a_trapezoid_with_one_step(tmp_path):
    result = run_iml("ig-checks", "--steps", 1, "--rule", "trapezoid", "--out", tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more.\n"
