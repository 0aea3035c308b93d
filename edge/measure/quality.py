"""Quality flags carried by every measurement (bit values are part of the log and display formats)."""

from __future__ import annotations

import enum


class Quality(enum.IntFlag):
    OK = 0
    NO_BAND = 1  # too few columns in the measurement window hold a TLF band
    ORDER = 2  # classes not in anatomical order (above, TLF, below) in too many columns
    FRAGMENTED = 4  # the band is broken into pieces within columns
    LOW_CONFIDENCE = 8  # the model's logit margin on the band is small
    UNCALIBRATED = 16  # no mm scale known: thickness is in the image's pixels
    FROZEN = 32  # the frame repeats the previous one
    OUTLIER = 64  # rejected by the temporal filter
    SCALE_UNCERTAIN = 128  # a scale is on screen but its numbers do not confirm it: thickness in px
    OUT_OF_DOMAIN = 256  # the frame is unlike the model's training images (edge.measure.domain): not measured


# A frame carrying any of these is excluded from the thickness measurement.
REJECTING = Quality.NO_BAND | Quality.ORDER | Quality.FRAGMENTED | Quality.LOW_CONFIDENCE | Quality.OUT_OF_DOMAIN


def names(flags: int) -> list[str]:
    return [f.name for f in Quality if f and flags & f and f.name]  # single flags: all named
