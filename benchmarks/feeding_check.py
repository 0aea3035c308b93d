"""What quantize's check of the declared input scale (convert.feeding) sees in a float model.

    python benchmarks/feeding_check.py MODEL --calib IMAGES [--data LABELLED] [--input-scale 1/255]

For the declared scale and each common alternative (x1, x1/255, the declared times and divided
by 255), the rest of the preprocessing as in the train.json beside the model or the flags: the
share of the float model's labels of the calibration images that change when its input is
doubled or halved ("moved"; the check calls a scale whose labels move on fewer than
feeding.STILL of the pixels still, and one on at least feeding.FOLLOWS following), the share of
pixels labelled alike in every image, the largest class share, and, with --data, the float mean
IoU on the labelled images (what the check cannot see without labels). Last, what quantize
would say. Figures for the tests' models and for models trained on the DL_Track images
(examples/dltrack_apo) were read this way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the float model (.keras, .h5 or a SavedModel folder)")
    p.add_argument("--calib", required=True, help="folder of calibration images")
    p.add_argument("--data", help="labelled folder (images/, masks/) for the float mean IoU of each scale")
    p.add_argument("--calib-n", type=int, default=16)
    p.add_argument("--size", help="N or HxW for a model of any size")
    p.add_argument("--trust-code", action="store_true")
    from convert.options import add_preprocess_options

    add_preprocess_options(p)
    args = p.parse_args(argv)

    from convert import feeding
    from convert.errors import QuantizeError
    from convert.inputs import calibration_images, labelled_set
    from convert.options import declared_spec, model_grid, parse_grid
    from convert.quantize import check_family, load_keras_model, with_fixed_batch
    from edge.measure.metrics import scores

    model = load_keras_model(args.model, trust_code=args.trust_code)
    h, w = model_grid(model, parse_grid(args.size), args.size)
    spec = declared_spec(args, Path(args.model), h, w, model.input_shape[-1])
    model = with_fixed_batch(model, h, w) if None in model.input_shape[1:3] else model
    family = check_family(model, spec)
    kind, classes = family["output_kind"] or "logits", family["classes"]
    calib = calibration_images(args.calib, args.calib_n, spec)
    data = labelled_set(args.data, spec)[:2] if args.data else None
    print(f"{args.model}: {kind} head, {classes} classes; declared {spec.describe()}")
    print(f"{'scale':>16} {'moved':>7} {'alike':>7} {'top class':>9} {'float mIoU':>10}")
    for flags, other in {"(declared)": spec, **feeding.level_alternatives(spec)}.items():
        r = feeding.reading(model, calib, other, kind, flags)
        top = np.bincount(r.labels.ravel(), minlength=classes).max() / r.labels.size
        iou = ""
        if data is not None:
            labels = feeding.float_labels(model, feeding.model_inputs(data[0], other), kind)
            iou = f"{scores(data[1], labels, classes)['mean_iou']:.4f}"
        name = flags if flags != "(declared)" else f"{feeding.scale_flag(spec.scale)} *"
        print(f"{name.removeprefix('--input-scale '):>16} {r.moved:7.2%} {r.same:7.1%} {top:9.1%} {iou:>10}")
    try:
        feeding.check_predictions(model, calib, spec, kind, [f"class{i}" for i in range(classes)])
        print("quantize: takes the declared preprocessing")
    except QuantizeError as e:
        print(f"quantize: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
