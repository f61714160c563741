"""src/iml/__main__.py, the dispatcher of `python -m iml COMMAND`: its help lists every command, an
unknown command ends in one line with the closest name, and every registered command has a module with
a `main` that gets the options (the data commands also their name)."""

import importlib
import importlib.util

import pytest
from conftest import run_iml

from iml import __main__ as dispatcher
from iml.__main__ import COMMANDS, DATA_COMMANDS


def test_help_lists_every_command_with_its_line():
    for argv in (["--help"], ["-h"], []):
        result = run_iml(*argv, timeout=120)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "usage: python -m iml COMMAND [OPTIONS]"
        for name, (_, text) in COMMANDS.items():
            assert any(line.split() == [name, *text.split()] for line in lines), name
    assert dispatcher.usage() + "\n" == result.stdout


@pytest.mark.parametrize(
    ("typed", "meant"), [("ffhq-standn", "ffhq-standin"), ("mnsit", "mnist"), ("ig-exakt", "ig-exact")]
)
def test_an_unknown_command_is_one_line_with_the_closest_name_and_exit_2(typed, meant):
    result = run_iml(typed, "--out", "x", timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: no command {typed!r}; did you mean {meant}? `python -m iml --help` lists them.\n"


def test_an_unknown_command_without_a_close_name_says_where_the_list_is(capsys):
    with pytest.raises(SystemExit) as info:
        dispatcher.main(["zzzz"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: no command 'zzzz'; `python -m iml --help` lists them.\n"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_has_a_module_with_main(name):
    module_name = COMMANDS[name][0]
    assert importlib.util.find_spec(module_name) is not None, f"{name}: module {module_name} does not exist"
    module = importlib.import_module(module_name)
    assert callable(getattr(module, "main", None)), f"{name}: {module_name} has no main"


def test_data_commands_are_the_five_of_data_cli_and_get_their_name(monkeypatch):
    assert {"mnist", "ffhq-download", "ffhq-standin", "ffhq-import", "ffhq-examples"} == DATA_COMMANDS
    calls = []
    module = importlib.import_module("iml.data_cli")
    monkeypatch.setattr(module, "main", calls.append)
    dispatcher.main(["ffhq-standin", "--per-class", "3"])
    assert calls == [["ffhq-standin", "--per-class", "3"]]


def test_a_command_runs_inside_run_main_so_an_error_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    result = run_iml("ffhq-standin", "--out", tmp_path / "file", "--per-class", "1", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --out ")


def test_a_data_commands_usage_names_the_command_as_typed():
    result = run_iml("ffhq-import", "--help", timeout=120)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m iml ffhq-import ")
    result = run_iml("ffhq-import", "--size", "0", timeout=120)
    assert result.returncode == 2 and "python -m iml ffhq-import: error: argument --size" in result.stderr
