"""``python -m iml ig-exact``: how exact Task 2's Integrated Gradients are, rule by rule.

    python -m iml ig-exact                        # the first 6 test digits
    python -m iml ig-exact --num-images 2 --device cpu

- The completeness sweep: the gap sum_i attr_i - (F(x) - F(x')) against m for every rule
  (right, left, midpoint, trapezoid, Gauss-Legendre), black baseline (figures/ig_completeness.png).
- Exact IG: the CNN is piecewise linear along the path, so IG can be computed with no
  approximation (Sotoudeh and Thakur 2019; iml/exact_ig.py); every rule's true error
  ||IG - IG_exact|| / ||IG_exact|| is printed and drawn beside its gap (figures/ig_exact_error.png).
"""

import argparse

from iml.cli import add_common_arguments, check_output_folder, device_from_argument
from iml.common import relative, set_seed
from iml.ig_command import add_digit_arguments, add_speed_arguments, explained_digits
from iml.integrated_checks import completeness_check, exact_check

NAME = "ig-exact"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=f"python -m iml {NAME}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_digit_arguments(parser, num_images=6)
    add_speed_arguments(parser)
    add_common_arguments(parser)
    return parser


def main(argv=None):
    """Run ``python -m iml ig-exact`` with the options `argv`."""
    args = build_parser().parse_args(argv)
    check_output_folder(args.out)
    device = device_from_argument(args.device)
    set_seed(args.seed)
    model, images, _, digits = explained_digits(args, device)
    written = [completeness_check(args, model, images, digits), exact_check(args, model, images, digits)]
    for path in written:
        print(f"wrote {relative(path)}")
