"""Was the float model fed in training as the conversion declares? Checks on the float model's
label maps of the calibration images, fed through the declared preprocessing (PreprocessSpec).

Two signs that it was fed otherwise, each a QuantizeError of one line naming a common
declaration under which the sign goes away:

- Degenerate labels: one class on almost every pixel, or the same label map for every image
  (`_degenerate`).
- Labels that do not follow the input's level. A model fed as in training has learned
  thresholds (its biases, batch normalisation offsets) on the values it saw; doubling or halving
  its input (6 dB) moves some of its boundaries. Fed values far larger than in training (a scale
  of 1 for a model trained on 1/255, or 255 typed for 1/255) the thresholds play no part: the
  labels stay the same when the input doubles or halves, while they are not those of the model
  as trained. Fed values far smaller, the input plays no part. So when the labels under the
  declared preprocessing stand still (below STILL of the pixels change) and under one of the
  common alternative scales they follow the input (at least FOLLOWS change) on images they tell
  apart, the declared scale is probably wrong. A model that stands still under every scale
  (trained with strong gain augmentation, or one whose biases are negligible at its scale, as a
  model trained on raw 0-255 pixels can be) is not refused: no alternative follows either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from convert.errors import QuantizeError
from edge.model.preprocess import PreprocessSpec, to_float

MAX_ONE_CLASS_SHARE = 0.995  # of the calibration pixels: a model fed as it was trained draws more than one class
MIN_BAND_SHARE = 0.0005  # of the calibration pixels: a model that draws the band on images of it draws more
MAX_SAME_LABELS = 0.999  # pixels labelled alike in every calibration image: the model does not see the images
PREDICTION_IMAGES = 16
# Of the pixels, those whose label changes when the model input is doubled or halved:
STILL = 0.005  # below: the labels do not follow the input's level
FOLLOWS = 0.01  # at least: they do
MAX_SAME_FOLLOWING = 0.9  # an alternative that follows must also tell the images apart (fewer pixels alike in all)
BATCH = 8


@dataclass(frozen=True)
class Reading:
    """The float model's labels of the calibration images under one preprocessing."""

    flags: str  # the tlf-convert flags that declare it
    spec: PreprocessSpec
    labels: np.ndarray  # (N, H, W)
    moved: float  # share of the labels that change when the model input is doubled or halved
    same: float  # share of the pixels labelled alike in every image

    def follows(self, classes: int) -> bool:
        return self.moved >= FOLLOWS and self.same <= MAX_SAME_FOLLOWING and _degenerate(self.labels, classes) is None


def model_inputs(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    return np.stack([to_float(image, spec) for image in images])


def float_labels(model, inputs: np.ndarray, kind: str) -> np.ndarray:
    """The float model's label maps (N, H, W) of float model inputs (N, H, W, C)."""
    from edge.model.segmenter import scores_in_logit_units

    step = BATCH if model.input_shape[0] is None else 1
    # predict_on_batch runs a traced graph: many times faster than eager calls for the same shapes
    out = [np.asarray(model.predict_on_batch(inputs[i : i + step])) for i in range(0, len(inputs), step)]
    return np.argmax(scores_in_logit_units(np.concatenate(out), kind), -1)


def reading(model, images: np.ndarray, spec: PreprocessSpec, kind: str, flags: str = "") -> Reading:
    x = model_inputs(images, spec)
    labels = float_labels(model, x, kind)
    moved = max(float((float_labels(model, x * f, kind) != labels).mean()) for f in (2.0, 0.5))
    same = float((labels == labels[:1]).all(axis=0).mean())
    return Reading(flags, spec, labels, moved, same)


def _degenerate(labels: np.ndarray, classes: int) -> str | None:
    """Why label maps look like a model fed otherwise than in training, or None."""
    shares = np.bincount(labels.ravel(), minlength=classes) / labels.size
    top = int(np.argmax(shares))
    if shares[top] >= MAX_ONE_CLASS_SHARE:
        return f"gives class {top} to {shares[top]:.1%} of their pixels"
    same = float((labels == labels[:1]).all(axis=0).mean())
    if len(labels) > 1 and same >= MAX_SAME_LABELS:
        return f"gives the same labels to all {len(labels)} of them ({same:.2%} of the pixels alike), as if it did not see them"
    return None


def scale_flag(scale: float) -> str:
    return f"--input-scale {scale:g}" if scale >= 1 else f"--input-scale 1/{1 / scale:.6g}"


def level_alternatives(spec: PreprocessSpec) -> dict[str, PreprocessSpec]:
    """The common scales other than the declared one (x1, x1/255, the declared times and divided
    by 255), the rest of the preprocessing as declared."""
    out, seen = {}, [spec.scale]
    for scale in (1.0, 1 / 255, spec.scale * 255, spec.scale / 255):
        if not any(np.isclose(scale, s, rtol=1e-6, atol=0) for s in seen):
            seen.append(scale)
            out[scale_flag(scale)] = replace(spec, scale=scale)
    return out


def check_predictions(
    model,
    calibration: np.ndarray,
    spec: PreprocessSpec,
    kind: str,
    classes: list[str],
    check_one_class: bool = True,
    check_level: bool = True,
    band_class: int | None = None,
) -> list[float]:
    """Stop when the float model, fed the calibration images through the declared preprocessing,
    gives degenerate labels (check_one_class: one class on almost every pixel or the same labels
    for every image), labels that do not follow the input's level while they do under a common
    alternative scale (check_level; see the module docstring), or, with check_one_class and a
    `band_class` (the class whose thickness the device measures), almost no pixel of it.
    Returns the class shares."""
    images = calibration[:PREDICTION_IMAGES]
    declared = reading(model, images, spec, kind)
    shares = np.bincount(declared.labels.ravel(), minlength=len(classes)) / declared.labels.size
    if check_one_class:
        _check_degenerate(model, images, spec, kind, classes, declared.labels)
    if check_level and declared.moved < STILL and _degenerate(declared.labels, len(classes)) is None:
        followers = []
        for flags, other in level_alternatives(spec).items():
            alt = reading(model, images, other, kind, flags)
            if alt.follows(len(classes)):
                followers.append(alt)
        if followers:
            best = max(followers, key=lambda r: r.moved)
            differ = float((best.labels != declared.labels).mean())
            raise QuantizeError(
                f"the float model, fed the calibration images as declared ({spec.describe()}), draws the same labels "
                f"when its input is doubled or halved ({declared.moved:.2%} of the pixels change), as a model fed "
                f"values far from those of its training does; with {best.flags} they follow the input "
                f"({best.moved:.1%} change) and differ from the declared ones on {differ:.0%} of the pixels: the "
                "preprocessing probably does not match its training; declare it with --input-scale (and "
                "--mean/--std), or pass --trust-preprocessing to convert as declared"
            )
    if check_one_class and band_class is not None and shares[band_class] < MIN_BAND_SHARE:  # after the scale's check
        raise QuantizeError(
            f"the float model, fed {len(images)} calibration images as declared ({spec.describe()}), gives the "
            f"band class {classes[band_class]!r} (output {band_class}) to {shares[band_class]:.3%} of their pixels "
            f"({' / '.join(f'{n} {v:.1%}' for n, v in zip(classes, shares))}): the device would measure no band. "
            "Check the class order (--class-names: the band is the class named tlf) and that --calib holds "
            "images of the band, or pass --allow-one-class to convert all the same"
        )
    return [round(float(v), 4) for v in shares]


def _check_degenerate(model, images, spec, kind, classes, labels) -> None:
    why = _degenerate(labels, len(classes))
    if why is None:
        return
    for i, name in enumerate(classes):
        why = why.replace(f"class {i} ", f"class {name!r} ")
    tries = {
        "--input-scale 1/255": replace(spec, scale=1 / 255, mean=0.0, std=1.0),
        "--input-scale 1": replace(spec, scale=1.0, mean=0.0, std=1.0),
        "--input-scale 1/127.5 --mean 1": replace(spec, scale=1 / 127.5, mean=1.0, std=1.0),
    }
    if spec.channels == 3:
        flipped = "rgb" if spec.channel_order == "bgr" else "bgr"
        tries[f"--channel-order {flipped}"] = replace(spec, channel_order=flipped)
    better = []
    for flags, other in tries.items():
        if other == spec:
            continue
        alt = images[..., ::-1] if other.channel_order != spec.channel_order else images  # model images, other order
        alt_labels = float_labels(model, model_inputs(alt, other), kind)
        if _degenerate(alt_labels, len(classes)) is None:
            shares = np.bincount(alt_labels.ravel(), minlength=len(classes)) / alt_labels.size
            better.append(f"with {flags} it gives {' / '.join(f'{v:.0%}' for v in shares)} of the classes")
    hint = f" ({'; '.join(better)})" if better else ""
    raise QuantizeError(
        f"the float model, fed the calibration images as declared ({spec.describe()}), {why}: the preprocessing "
        f"probably does not match its training{hint}; declare it with --input-scale, --mean/--std, --channel-order, "
        "or pass --allow-one-class if the images truly show one class"
    )
