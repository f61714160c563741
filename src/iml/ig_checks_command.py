"""``python -m iml ig-checks``: two sanity checks of Task 2's Integrated Gradients, printed and drawn.

    python -m iml ig-checks                       # 100 test digits; the randomization test on the first 8
    python -m iml ig-checks --num-images 400 --steps 50 --rule midpoint

- The model-parameter randomization test (Adebayo et al. 2018): the layers are re-initialised
  from the logits down, and the Spearman rank correlation of |IG| with the trained model's is
  followed (ig_randomization.png, ig_randomization_maps.png in outputs/ig-checks/).
- Pixel deletion: pixels are set to black in the order of IG, of the plain gradient and at
  random, and the probability of the explained digit is followed (ig_deletion.png).

IG is the fast twin of the exercise's `integrate_gradients`, black baseline.
"""

from iml.common import relative
from iml.ig_command import command_parser, explained_digits
from iml.integrated_checks import RANDOMIZATION_IMAGES, deletion_check, path_points, randomization_check
from iml.integrated_fast import integrate_gradients_fast
from iml.outputs import figure_set
from iml.quadrature import RULES

NAME = "ig-checks"


def build_parser():
    def add_rule(parser):
        parser.add_argument(
            "--rule", choices=RULES, default="right", help="integration rule (default: right, the exercise's sum)"
        )

    return command_parser(NAME, __doc__, 100, 50, add_rule)


def main(argv=None):
    """Run ``python -m iml ig-checks`` with the options `argv`."""
    args = build_parser().parse_args(argv)
    model, images, _, digits = explained_digits(args)
    with path_points(len(images) * args.steps, "Integrated Gradients") as bar:
        attributions = integrate_gradients_fast(
            model, images, digits, args.steps, rule=args.rule, batch_points=args.batch_points, progress=bar
        )
    described = f"black baseline, m = {args.steps}, {args.rule} rule"
    with figure_set(args.out, NAME) as written:  # the three figures together, or none
        randomization_check(args, model, images[:RANDOMIZATION_IMAGES], digits[:RANDOMIZATION_IMAGES])
        deletion_check(args, model, images, digits, attributions, described)
    print("\n".join(f"wrote {relative(path)}" for path in written))
