"""The demo bundle runs the int8 graph `tlf-convert rewrite` made of it (convert.blockwise): no
TRANSPOSE_CONV left, what its manifest records (read with LiteRT alone, no TensorFlow)."""

import sys

from convert.blockwise import blockwise_transpose_convs
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.model.segmenter import interpreter_class


def test_the_demo_bundle_runs_the_rewritten_graph():
    bundle = load_bundle(DEMO_BUNDLE)
    cls, _ = interpreter_class()
    resolver = sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    ops = [op["op_name"] for op in cls(model_path=str(bundle.model_path), experimental_op_resolver_type=resolver)._get_ops_details()]
    assert "TRANSPOSE_CONV" not in ops and ops.count("DEPTH_TO_SPACE") == 4
    assert bundle.manifest["export"]["transpose_conv_blockwise"] == 4 and sorted(set(ops)) == bundle.manifest["ops"]
    assert blockwise_transpose_convs(bundle.model_path.read_bytes())[1] == 0
    assert any("the same int8 outputs on all 206 inputs" in n for n in bundle.manifest["conversion_notes"])
