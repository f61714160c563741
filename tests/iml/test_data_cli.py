"""src/iml/data_cli.py, the data commands `python -m iml COMMAND`: their options, their one-line
errors, and generated argument lists that end in a result, an argparse error or one sentence."""

import re

import pytest
from conftest import FUZZ, argparse_error, argument_lists, assert_clear_error, run_cli, run_iml, write_png
from hypothesis import example, given

import util
from iml import data_cli
from iml.ffhq_import import RESAMPLING, read_manifest
from iml.image_files import png_problem


def subparser(name):
    """The parser of one data command of `python -m iml`."""
    (commands,) = [a for a in data_cli.build_parser()._actions if a.dest == "command"]
    return commands.choices[name]


def test_every_command_is_there():
    (commands,) = [a for a in data_cli.build_parser()._actions if a.dest == "command"]
    assert set(commands.choices) == {"mnist", "ffhq-download", "ffhq-standin", "ffhq-import", "ffhq-examples"}


def test_data_command_line_errors_are_one_line(tmp_path):
    missing = tmp_path / "nothing"
    result = run_iml("ffhq-examples", "--data", missing, "--out", tmp_path)
    assert_clear_error(result, "nothing/A_ffhq does not exist; run `python -m iml ffhq-download`")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_standin_seed_must_be_one_numpy_accepts(capsys):
    parser = data_cli.build_parser()
    assert parser.parse_args(["ffhq-standin", "--seed", "4294967295"]).seed == 4294967295
    for bad in ("-1", "4294967296"):
        error = argparse_error(parser, ["ffhq-standin", "--seed", bad], capsys)
        assert f"argument --seed: must be an integer from 0 to 4294967295, got {bad}" in error


# ------------------------------------------------------------------ ffhq-import


def test_import_help_lists_every_filter(capsys):
    with pytest.raises(SystemExit) as info:
        data_cli.build_parser().parse_args(["ffhq-import", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    for flag in ("--real", "--fake", "--out", "--size", "--resample", "--real-resample", "--fake-resample"):
        assert flag in text, flag
    for flag in ("--allow-upscale", "--skip-unreadable", "--force", "--workers"):
        assert flag in text, flag
    for name in RESAMPLING:
        assert name in text, name
    assert "default: lanczos" in text


@pytest.mark.parametrize("missing", ["--real", "--fake", "--out"])
def test_import_needs_both_folders_and_the_output(missing, capsys):
    argv = {"--real": "r", "--fake": "f", "--out": "o"}
    del argv[missing]
    error = argparse_error(
        data_cli.build_parser(), ["ffhq-import", *[a for pair in argv.items() for a in pair]], capsys
    )
    assert f"the following arguments are required: {missing}" in error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resample", "antialias"], "argument --resample: invalid choice: 'antialias'"),
        (["--fake-resample", "cubic"], "argument --fake-resample: invalid choice: 'cubic'"),
        (["--size", "0"], "argument --size: must be an integer from 8 to 4096, got 0"),
        (["--workers", "0"], "argument --workers: must be an integer from 1 to 1024, got 0"),
    ],
)
def test_import_refuses_bad_options(argv, message, capsys):
    argv = ["ffhq-import", "--real", "r", "--fake", "f", "--out", "o", *argv]
    assert message in argparse_error(data_cli.build_parser(), argv, capsys)


def test_import_filters_default_to_resample():
    parse = data_cli.build_parser().parse_args
    base = ["ffhq-import", "--real", "r", "--fake", "f", "--out", "o"]
    args = parse(base)
    assert (args.resample, args.real_resample, args.fake_resample, args.size) == ("lanczos", None, None, 128)
    args = parse([*base, "--resample", "box", "--real-resample", "hamming"])
    assert (args.resample, args.real_resample, args.fake_resample) == ("box", "hamming", None)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Two folders of two 150x150 PNG pictures each."""
    root = tmp_path_factory.mktemp("pictures")
    for label, seed in (("real", 0), ("fake", 10)):
        for i in range(2):
            write_png(root / label / f"{i}.png", seed=seed + i, size=150)
    return root / "real", root / "fake"


def test_import_says_what_it_wrote_and_notes_a_size_task3_cannot_read(pictures, tmp_path, monkeypatch, capsys):
    real, fake = pictures
    argv = ["ffhq-import", "--real", str(real), "--fake", str(fake), "--workers", "1"]
    assert run_cli(data_cli, [*argv, "--out", str(tmp_path / "a")], monkeypatch, script="iml") == "ran"
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"wrote 2 real \(lanczos\) and 2 fake \(lanczos\) 128x128 PNG images and MANIFEST.csv into \S+/a\n", out
    )
    argv += ["--out", str(tmp_path / "b"), "--size", "64", "--real-resample", "box"]
    assert run_cli(data_cli, argv, monkeypatch, script="iml") == "ran"
    out = capsys.readouterr().out
    assert "wrote 2 real (box) and 2 fake (lanczos) 64x64 PNG images" in out
    assert "note: Task 3 reads 128x128 images; import with --size 128 to train on these." in out
    assert [row["filter"] for row in read_manifest(tmp_path / "b")] == ["box", "box", "lanczos", "lanczos"]
    assert png_problem(tmp_path / "b" / util.REAL_FOLDER / "00000.png", 64) is None


def test_import_refuses_an_existing_output_in_one_line(pictures, tmp_path):
    real, fake = pictures
    (tmp_path / "out").mkdir()
    result = run_iml("ffhq-import", "--real", real, "--fake", fake, "--out", tmp_path / "out")
    assert_clear_error(result, "out already exists; delete it or pass --force to replace it.")
    assert result.returncode == 1 and not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------ generated argument lists


@pytest.fixture(scope="module")
def tiny_standin(tmp_path_factory):
    from iml.standin import make_standin

    return make_standin(tmp_path_factory.mktemp("standin") / "data", per_class=2, seed=0, workers=1)


@FUZZ
@example(argv=[])
@given(argv=argument_lists(subparser("ffhq-examples"), {"--data", "--out"}))
def test_fuzz_ffhq_examples_command_line(argv, tiny_standin, tmp_path_factory, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    prefix = ["ffhq-examples", "--data", str(tiny_standin), "--out", str(out)]
    outcome = run_cli(data_cli, prefix + argv, monkeypatch, script="iml")
    if not argv:
        assert outcome == "ran" and sorted(p.name for p in out.glob("*.png")) == ["fake.png", "real.png"]


@FUZZ
@example(argv=[])
@given(argv=argument_lists(subparser("ffhq-standin"), {"--out", "--workers"}, max_size=3))
def test_fuzz_ffhq_standin_command_line(argv, tmp_path_factory, monkeypatch):
    out = tmp_path_factory.mktemp("standin") / "data"
    outcome = run_cli(
        data_cli, ["ffhq-standin", "--out", str(out), "--per-class", "1", "--workers", "1", *argv], monkeypatch
    )
    if not argv:
        assert outcome == "ran" and util.is_standin(out) and len(util.list_images(out / util.REAL_FOLDER)) == 1


@FUZZ
@example(argv=[])
@example(argv=["--size", "1e38"])
@example(argv=["--allow-upscale", "--size", "1000"])
@example(argv=["--resample", "nearest", "--fake-resample", "box"])
@given(argv=argument_lists(subparser("ffhq-import"), {"--real", "--fake", "--out", "--workers"}))
def test_fuzz_ffhq_import_command_line(argv, pictures, tmp_path_factory, monkeypatch):
    real, fake = pictures
    out = tmp_path_factory.mktemp("import") / "data"
    prefix = ["ffhq-import", "--real", str(real), "--fake", str(fake), "--out", str(out), "--workers", "1"]
    outcome = run_cli(data_cli, prefix + argv, monkeypatch, script="iml")
    if argv in ([], ["--allow-upscale", "--size", "1000"], ["--resample", "nearest", "--fake-resample", "box"]):
        assert outcome == "ran"
    if outcome == "ran":
        assert len(read_manifest(out)) == 4
    else:
        assert not out.exists()
    assert not list(out.parent.glob(".data.partial-*"))
