"""Every tlf-* command line: --version, a description and the exit codes in each subcommand's
--help, and 130 for an interrupted command."""

from __future__ import annotations

import argparse
import re

import pytest

import convert.cli
import convert.commands
import edge.cli
import firmware_bridge.cli
from edge.cli_help import package_version

TOOLS = {"tlf-edge": edge.cli.main, "tlf-convert": convert.cli.main, "tlf-bridge": firmware_bridge.cli.main}


def subcommands(main, capsys) -> list[str]:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    return re.search(r"\{([a-z,-]+)\}", text).group(1).split(",")


@pytest.mark.parametrize("tool", TOOLS)
def test_version_names_the_tool_and_the_installed_version(tool, capsys):
    with pytest.raises(SystemExit) as exit_:
        TOOLS[tool](["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{tool} {package_version()}"


@pytest.mark.parametrize("tool", TOOLS)
def test_every_subcommand_has_a_description_and_states_the_exit_codes(tool, capsys):
    names = subcommands(TOOLS[tool], capsys)
    assert len(names) >= 3
    for name in names:
        with pytest.raises(SystemExit) as exit_:
            TOOLS[tool]([name, "--help"])
        assert exit_.value.code == 0
        raw = capsys.readouterr().out
        text = " ".join(raw.split())
        assert "exit codes: 0 ok, 1 runtime failure" in text, (tool, name)
        assert "2 usage or bad input" in text and "130 interrupted" in text, (tool, name)
        # argparse prints usage, a blank line, the description, a blank line, the arguments
        description = raw.split("\n\n")[1]
        assert not description.startswith(("positional arguments", "options")), (tool, name, raw[:300])
        assert len(description.split()) >= 3 and description.rstrip().endswith("."), (tool, name, description)


def test_only_tlf_convert_has_a_validation_gate_code(capsys):
    for tool, main in TOOLS.items():
        with pytest.raises(SystemExit):
            main(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert ("3 validation gate failed" in text) == (tool == "tlf-convert"), tool


def test_an_interrupted_command_exits_130(monkeypatch, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert.commands, "cmd_phantom", interrupted)
    assert convert.cli.main(["phantom", "--out", str(tmp_path / "p"), "--n", "1"]) == 130
    monkeypatch.setattr(edge.cli, "cmd_calibrate", interrupted)
    assert edge.cli.main(["calibrate", str(tmp_path / "x.png"), "--points", "0,0,0,10", "--mm", "1"]) == 130


def test_the_exit_codes_text_is_what_the_parsers_print():
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("go", help="do the thing")
    from edge.cli_help import conventions

    conventions(parser, sub)
    assert sub.choices["go"].description == "Do the thing."
    assert sub.choices["go"].epilog == parser.epilog


def test_bad_input_is_one_line_and_a_defect_is_a_traceback(monkeypatch, tmp_path, capsys):
    """The converter's exception family (convert.errors) is what a user can fix: one line, exit 2.
    Anything else is a defect in the product and keeps its traceback, not disguised as bad input."""
    from convert.errors import ConvertError

    argv = ["phantom", "--out", str(tmp_path / "p"), "--n", "1"]

    def bad_input(args):
        raise ConvertError("the folder holds no images")

    def defect(args):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(convert.commands, "cmd_phantom", bad_input)
    assert convert.cli.main(argv) == 2
    assert capsys.readouterr().err == "tlf-convert: error: the folder holds no images\n"
    monkeypatch.setattr(convert.commands, "cmd_phantom", defect)
    with pytest.raises(ValueError, match="broadcast"):
        convert.cli.main(argv)


def test_a_real_bad_option_is_a_convert_error_line(tmp_path, capsys):
    """The options' own checks raise the family: an unknown augmentation part, a bad class weight."""
    pytest.importorskip("tensorflow")
    code = convert.cli.main(["train", "--out", str(tmp_path / "m"), "--class-weights", "1,x", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["tlf-convert: error: --class-weights '1,x' is not comma-separated numbers"]


@pytest.mark.parametrize("tool, args, line", [
    ("tlf-edge", ["run", "--frames", "x"], "tlf-edge: error: run: argument --frames: invalid int value: 'x'"),
    ("tlf-edge", ["analyze"], "tlf-edge: error: analyze: the following arguments are required: INPUT, --out"),
    ("tlf-convert", ["rewrite"], "tlf-convert: error: rewrite: the following arguments are required: bundle"),
    ("tlf-bridge", ["demo", "loop://", "--seconds", "x"], "tlf-bridge: error: demo: argument --seconds: invalid"),
])
def test_a_usage_error_ends_in_the_tools_one_error_line(tool, args, line, capsys):
    """argparse's own refusals end as every other one does: "TOOL: error: ...", naming the subcommand."""
    with pytest.raises(SystemExit) as exit_:
        TOOLS[tool](args)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(line), last
