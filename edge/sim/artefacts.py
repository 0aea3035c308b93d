"""What real scans show that is not anatomy: acoustic shadows, reverberation lines and washed-out
frames, drawn at random for a scene and added to its reflectivity map (the labels ignore them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.sim.anatomy import Anatomy


@dataclass(frozen=True)
class Artefacts:
    """Things real scans show that are not anatomy. The labels ignore them (the tissue is still there).

    shadow: a vertical band below shadow_from_mm loses shadow_db of echo (soft lateral edges); with
    shadow_from_mm > 0 a bright small object sits at its top (a calcification, an air pocket), at 0
    it is lost probe contact. reverb: the echo of a strong reflector at reverb_mm bounces between it
    and the probe face and repeats at 2x, 3x... that depth, each time weaker; with reverb_follow_tlf
    the reflector is the TLF itself (a ghost band in the muscle). low_contrast < 1: a washed-out
    frame (log contrast scaled down, a haze floor added).
    """

    shadow_x_mm: float | None = None
    shadow_width_mm: float = 3.0
    shadow_from_mm: float = 0.0
    shadow_db: float = 25.0
    reverb_mm: float | None = None
    reverb_follow_tlf: bool = False
    reverb_lines: int = 3
    reverb_level: float = 0.75  # brightness (0-1 scale) of the first repeat
    low_contrast: float = 1.0

    @property
    def any(self) -> bool:
        return self.shadow_x_mm is not None or self.reverb_mm is not None or self.low_contrast < 1.0


def random_artefacts(rng: np.random.Generator, p: float, anatomy: Anatomy | None = None) -> Artefacts | None:
    """Each artefact (shadow, reverberation, washed-out frame) present with probability p; None if none."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"artefact probability {p!r} is not in 0-1")
    a = anatomy or Anatomy()
    shadow, reverb, washed = rng.random(3) < p
    fields: dict = {}
    if shadow:
        contact = rng.random() < 0.5  # lost contact at an edge, or an object in the fat
        fields.update(
            shadow_x_mm=float(rng.choice([0.0, a.width_mm])) if contact else float(rng.uniform(0.2, 0.8) * a.width_mm),
            shadow_width_mm=float(rng.uniform(2.0, 7.0)),
            shadow_from_mm=0.0 if contact else float(rng.uniform(a.skin_mm + 0.5, a.skin_mm + 0.7 * a.fat_mm)),
            shadow_db=float(rng.uniform(12.0, 30.0)),
        )
    if reverb:
        follow = bool(rng.random() < 0.5)
        fields.update(
            reverb_mm=a.skin_mm + a.fat_mm if follow else float(rng.uniform(0.8, 3.0)),
            reverb_follow_tlf=follow,
            reverb_lines=int(rng.integers(2, 5)),
            reverb_level=float(rng.uniform(0.6, 0.85)),
        )
    if washed:
        fields.update(low_contrast=float(rng.uniform(0.45, 0.75)))
    return Artefacts(**fields) if fields else None


def artefact_reflectivity(e: np.ndarray, art: Artefacts, y: np.ndarray, x: np.ndarray, top: np.ndarray):
    """Add reverberation lines and an acoustic shadow to a reflectivity (linear amplitude) map."""
    e = e.copy()
    yy = np.broadcast_to(y, e.shape)
    if art.reverb_mm is not None:
        base = top if art.reverb_follow_tlf else np.full_like(x, art.reverb_mm)
        for n in range(2, 2 + art.reverb_lines):
            level = art.reverb_level - 0.12 * (n - 2)  # each bounce weaker (brightness scale)
            amp = 10.0 ** ((level - 1.0) * 48.0 / 20.0)
            line = np.exp(-(((yy - n * base) / 0.12) ** 2)).astype(np.float32)
            e = np.maximum(e, amp * line)
    if art.shadow_x_mm is not None:
        half = art.shadow_width_mm / 2
        dx = np.abs(x - art.shadow_x_mm)
        edge = np.clip((half + 0.6 - dx) / 1.2, 0.0, 1.0)  # soft edges 1.2 mm wide
        below = np.clip((yy - art.shadow_from_mm) / 0.3, 0.0, 1.0)
        loss = 10.0 ** (-art.shadow_db / 20.0)
        e = e * (1.0 - (1.0 - loss) * edge * below).astype(np.float32)
        if art.shadow_from_mm > 0:  # the object casting it: a bright curved cap
            cap = np.exp(-(((yy - art.shadow_from_mm + 0.25) / 0.15) ** 2)) * edge
            e = np.maximum(e, cap.astype(np.float32))
    return e
