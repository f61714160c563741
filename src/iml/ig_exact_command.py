"""``python -m iml ig-exact``: how exact Task 2's Integrated Gradients are, rule by rule.

    python -m iml ig-exact                        # the first 6 test digits
    python -m iml ig-exact --num-images 2 --device cpu

- The completeness sweep: the gap sum_i attr_i - (F(x) - F(x')) against m for every rule
  (right, left, midpoint, trapezoid, Gauss-Legendre), black baseline (ig_completeness.png in outputs/ig-exact/).
- Exact IG: the CNN is piecewise linear along the path, so IG can be computed with no
  approximation (Sotoudeh and Thakur 2019; iml/exact_ig.py); every rule's true error
  ||IG - IG_exact|| / ||IG_exact|| is printed and drawn beside its gap (ig_exact_error.png).
"""

from iml.common import relative
from iml.ig_command import command_parser, explained_digits
from iml.integrated_checks import completeness_check, exact_check
from iml.outputs import figure_set

NAME = "ig-exact"


def build_parser():
    return command_parser(NAME, __doc__, 6)


def main(argv=None):
    """Run ``python -m iml ig-exact`` with the options `argv`."""
    args = build_parser().parse_args(argv)
    model, images, _, digits = explained_digits(args)
    with figure_set(args.out, NAME) as written:  # both figures, or neither
        completeness_check(args, model, images, digits)
        exact_check(args, model, images, digits)
    print("\n".join(f"wrote {relative(path)}" for path in written))
