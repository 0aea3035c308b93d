"""What every tlf-* command line says about itself: --version, a description for each
subcommand, and the exit codes."""

from __future__ import annotations

import argparse
import sys

EXIT_CODES = {
    0: "ok",
    1: "runtime failure (a run that failed or measured nothing)",
    2: "usage or bad input, refused before anything ran",
    3: "validation gate failed",
    130: "interrupted",
}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors end in the line every other refusal prints:
    "tlf-edge: error: run: ..." rather than "tlf-edge run: error: ..." (its subcommands' parsers
    are of this class too)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        tool, _, command = self.prog.partition(" ")
        self.exit(2, f"{tool}: error: {command + ': ' if command else ''}{message}\n")


def package_version() -> str:
    """The installed distribution's version, or the source tree's when it is not installed."""
    from edge.host import installed_version

    found = installed_version("tlf-edge")
    if found is None:
        from edge import __version__

        return __version__
    return found


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading the installed distributions costs a
    start of every command tens of milliseconds)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def exit_code_text(codes) -> str:
    return "exit codes: " + ", ".join(f"{c} {EXIT_CODES[c]}" for c in codes)


def conventions(parser: argparse.ArgumentParser, sub, codes=(0, 1, 2, 130)) -> None:
    """Give `parser` --version and the exit codes, and each subcommand of `sub` (its
    add_subparsers action) a description (its help line, when it has none) and the exit codes."""
    parser.add_argument("--version", action=_Version, help="show the program's version number and exit")
    text = exit_code_text(codes)
    parser.epilog = text
    helps = {a.dest: a.help for a in sub._choices_actions}  # argparse keeps each help line only here
    for name, child in sub.choices.items():
        if not child.description and helps.get(name):
            child.description = helps[name][0].upper() + helps[name][1:] + "."
        child.epilog = f"{child.epilog}\n\n{text}" if child.epilog else text
