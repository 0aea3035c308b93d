"""The product's messages go through logging; a command line shows each as one line on stderr."""

from __future__ import annotations

import logging

from edge import logs


def test_each_message_is_one_line_named_for_the_command(capsys):
    logs.one_line("tlf-edge")
    logs.get("edge.model.segmenter").warning("model %s failed\nits gate", "abc")
    logs.get("convert.quantize").warning("a convert warning")
    logs.get("edge.runtime.factory").info("not shown at the default level")
    assert capsys.readouterr().err.splitlines() == [
        "tlf-edge: warning: model abc failed its gate",
        "tlf-edge: warning: a convert warning",
    ]


def test_installing_again_replaces_the_handler(capsys):
    logs.one_line("tlf-edge")
    logs.one_line("tlf-convert", level=logging.INFO)
    logs.get("edge.sinks.recording").info("a note")
    assert capsys.readouterr().err == "tlf-convert: info: a note\n"
    assert sum(type(h).__name__ == "_Stderr" for h in logging.getLogger("tlf_edge").handlers) == 1
    logs.one_line("tlf-edge")


def test_modules_log_under_their_family():
    assert logs.get("edge.model.segmenter").name == "tlf_edge.edge.model.segmenter"
    assert logs.get("convert.cli").name == "tlf_convert.convert.cli"
