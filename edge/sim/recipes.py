"""The recipes of the phantom data sets and the seed ranges they draw from, in one place.

Each range is kept apart from the others so that training, validation, calibration, the domain
statistics and the thickness response never share a scene.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edge.data.dataset import LabelledFrame
from edge.measure.thickness import ThicknessOptions, window_slice
from edge.sim import phantom

# Phantom seed ranges (first seed of each).
TRAINING_VALIDATION_SEEDS = 10_000_000  # + the training seed: the 32 scenes a phantom training run validates on
CALIBRATION_SEEDS = 20_000_000  # the int8 representative set of a phantom bundle
PHANTOM_DATA_SEEDS = 30_000_000  # the held-out scenes: convert's validation set and 'phantom[:N]' data
RESPONSE_SEEDS = 40_000_000  # the scenes the thickness response is fitted on
DOMAIN_SEEDS = 50_000_000  # the scenes a phantom bundle's domain statistics are taken from
STAGE4_SEED_OFFSET = 4_100_000  # demo stage 4's phantom stream: past every scene stages 1-3 draw
STAGE5_SEED_OFFSET = 4_108_000  # demo stage 5's: past stage 4's 8,000 scenes


def phantom_scan(seed: int, machine=None) -> phantom.Scan:
    """One phantom scan at a random native size (256-480 px a side) and field of view (30-50 mm):
    the recipe of convert's training, calibration and validation samples."""
    rng = np.random.default_rng(seed + 104729)
    h = int(rng.choice([256, 320, 400, 480]))
    w = int(rng.choice([256, 320, 400, 480]))
    field_mm = (float(rng.uniform(30, 50)), float(rng.uniform(30, 50)))
    return phantom.scan(seed, shape=(h, w), machine=machine, field_mm=field_mm)


# Held-out phantom scenes: seeds that training and calibration never use, each with the look of a
# named preset in turn (training draws random looks, never a preset's exact settings). convert's
# validation set and the 'phantom[:N]' data are the same scenes.


def held_out_look(i: int) -> str:
    """The preset whose look the i-th held-out scene has."""
    names = sorted(phantom.PRESETS)
    return names[i % len(names)]


def held_out_scan(i: int) -> phantom.Scan:
    """The i-th held-out phantom scan (seed PHANTOM_DATA_SEEDS + i, look `held_out_look(i)`)."""
    return phantom_scan(PHANTOM_DATA_SEEDS + i, phantom.PRESETS[held_out_look(i)])


def held_out_frames(n: int, options: ThicknessOptions = ThicknessOptions()) -> Iterator[LabelledFrame]:
    """The first n held-out scans as labelled frames ('phantom:N' data), each with its exact
    thickness (mm) in the measurement window of `options`."""

    for i in range(n):
        scan = held_out_scan(i)
        exact = float(np.median(scan.thickness_mm[window_slice(options, scan.thickness_mm.size)]))
        yield LabelledFrame(
            f"phantom-{PHANTOM_DATA_SEEDS + i}-{held_out_look(i)}", scan.image, scan.labels, scan.spacing_mm, exact
        )
