"""Measurement: TLF thickness from a segmentation, its quality flags, the temporal filter, the
freeze detector, per-band thickness, the out-of-domain guard and segmentation scores."""
