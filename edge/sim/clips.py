"""Phantom clips: one scene moving over time with ground truth on every frame.

`clip` is a slow, gentle motion (the tissue slides, the fat and the TLF breathe); `extension_clip`
follows a trunk-extension schedule (`extension_level`) with the speckle decorrelating with the
motion and optional freeze segments (`freeze_segments`) and artefacts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from edge.sim.anatomy import Anatomy, geometry, random_anatomy
from edge.sim.artefacts import Artefacts, random_artefacts
from edge.sim.machine import PRESETS, Machine, preset
from edge.sim.render import Scan, render
from edge.sim.texture import Texture, complex_normal


def _mix(a: float, u: np.ndarray, b: float, v: np.ndarray) -> np.ndarray:
    """a * u + b * v for complex64 u, v and real a, b, part by part in float32 (the same roundings as
    the complex arithmetic, whose products with the zero imaginary part of a real factor are exact)."""
    out = u.view(np.float32) * np.float32(a)
    out += v.view(np.float32) * np.float32(b)
    return out.view(np.complex64)


def clip(
    seed: int,
    frames: int = 90,
    fps: float = 30.0,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str = "default",
    anatomy: Anatomy | None = None,
):
    """Yield `frames` Scans of one scene moving slowly, as during a gentle trunk extension.

    The tissue slides laterally, the fat layer and the TLF breathe by a few percent, and the
    speckle decorrelates partly between frames. Ground truth comes with every frame.
    """
    rng = np.random.default_rng(seed)
    base = anatomy or random_anatomy(rng)
    if isinstance(machine, str):
        machine = PRESETS[machine]
    h, w = shape
    tex = Texture(rng, shape, (base.depth_mm / h, base.width_mm / w))
    speckle = tex.window(tex.scatter, 0).copy()
    period_s = float(rng.uniform(3.0, 5.0))
    for i in range(frames):
        t = i / fps
        phase = 2 * math.pi * t / period_s
        a = replace(
            base,
            slide_mm=1.5 * math.sin(phase),
            fat_mm=base.fat_mm * (1 + 0.03 * math.sin(phase)),
            tlf_mm=base.tlf_mm * (1 + 0.06 * math.sin(phase + 0.5)),
            wave_phase=base.wave_phase + 0.2 * math.sin(phase),
        )
        fresh = complex_normal(rng, (h, w))
        speckle = _mix(0.95, speckle, math.sqrt(1 - 0.95**2), fresh)
        yield render(a, machine, shape, seed=seed * 1000 + i, _texture=tex, _speckle=speckle)


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


def extension_level(rng: np.random.Generator, duration_s: float) -> Callable[[float], float]:
    """A random trunk-extension schedule: rest, rise, hold, return, repeated; E(t) in 0-1, smooth (C1).

    Returns E as a function of time in seconds.
    """
    keys = [(0.0, 0.0)]
    t, level = float(rng.uniform(0.2, 0.8)), 0.0
    keys.append((t, 0.0))
    while t < duration_s + 3.0:
        target = float(rng.uniform(0.6, 1.0)) if level < 0.5 else float(rng.uniform(0.0, 0.15))
        t += float(rng.uniform(0.8, 2.0))  # move
        keys.append((t, target))
        t += float(rng.uniform(0.3, 1.2))  # hold
        keys.append((t, target))
        level = target
    times = np.array([k[0] for k in keys])
    levels = [k[1] for k in keys]

    def level_at(time_s: float) -> float:
        i = int(np.searchsorted(times, time_s, side="right")) - 1
        i = min(max(i, 0), len(times) - 2)
        u = (time_s - times[i]) / (times[i + 1] - times[i])
        return levels[i] + (levels[i + 1] - levels[i]) * _smoothstep(u)

    return level_at


def freeze_segments(rng: np.random.Generator, frames: int, count: int, length=(8, 30)) -> list[tuple[int, int]]:
    """`count` non-overlapping (start, length) freeze segments, each after at least one live frame."""
    segments: list[tuple[int, int]] = []
    for _ in range(50 * max(count, 1)):
        if len(segments) == count:
            break
        n = int(rng.integers(length[0], length[1] + 1))
        if frames - n - 1 < 1:
            break
        start = int(rng.integers(1, frames - n))
        if all(start + n + 1 <= s0 or s0 + n0 + 1 <= start for s0, n0 in segments):  # a live frame between
            segments.append((start, n))
    return sorted(segments)


_SPECKLE_KEEP = 0.7  # share of the speckle amplitude that moves with the tissue; the rest decorrelates


@dataclass(frozen=True)
class _Extension:
    """How the scene of an extension clip moves: with the extension level E(t) it slides laterally
    (`slide_mm` at E = 1), the muscle glides under the fascia, the TLF thickens (`thickness_change`,
    relative, kept within 0.5-3.0 mm) and tilts and ripples a little, the fat is pressed slightly; a
    slow breath adds a little of each."""

    base: Anatomy
    level_at: Callable[[float], float]
    slide_mm: float
    thickness_change: float
    glide_mm: float
    tilt_deg: float
    breath_s: float

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        base: Anatomy,
        duration_s: float,
        slide_mm: float | None,
        thickness_change: float | None,
    ) -> _Extension:
        """The schedule and the amplitudes of a clip (the ones not given drawn from rng, in this order)."""
        level_at = extension_level(rng, duration_s)
        slide = float(rng.uniform(1.5, 4.0)) if slide_mm is None else float(slide_mm)
        dthick = float(rng.uniform(0.08, 0.25)) if thickness_change is None else float(thickness_change)
        glide = float(rng.uniform(0.3, 2.0))
        dtilt = float(rng.uniform(-2.0, 2.0))
        breath_s = float(rng.uniform(3.5, 5.5))
        return cls(base, level_at, slide, dthick, glide, dtilt, breath_s)

    def anatomy(self, t: float, e: float) -> Anatomy:
        """The scene at time t (s) and extension level e."""
        base = self.base
        breath = math.sin(2 * math.pi * t / self.breath_s)
        return replace(
            base,
            slide_mm=self.slide_mm * e + 0.2 * breath,
            muscle_slide_mm=self.glide_mm * e,
            fat_mm=base.fat_mm * (1 - 0.04 * e + 0.01 * breath),
            tlf_mm=float(np.clip(base.tlf_mm * (1 + self.thickness_change * e + 0.015 * breath), 0.5, 3.0)),
            tilt_deg=base.tilt_deg + self.tilt_deg * e,
            wave_phase=base.wave_phase + 0.35 * e,
            wave_amp_mm=base.wave_amp_mm * (1 + 0.25 * e),
        )


def _frozen_frames(
    rng: np.random.Generator, frames: int, freeze: int | list[tuple[int, int]], freeze_frames: tuple[int, int]
) -> np.ndarray:
    """Which frames are frozen: `freeze` random segments drawn from rng, or the (start, length) pairs given."""
    if isinstance(freeze, int):
        segments = freeze_segments(rng, frames, freeze, freeze_frames)
    else:
        segments = sorted((int(a), int(n)) for a, n in freeze)
    frozen = np.zeros(frames, bool)
    for start, n in segments:
        if start < 1 or n < 1:
            raise ValueError(f"freeze segment {(start, n)!r} must start after frame 0 and last a frame or more")
        frozen[start : start + n] = True
    return frozen


def _clip_artefacts(
    seed: int, p: float, base: Anatomy, frames: int
) -> tuple[Artefacts | None, tuple[range, float] | None]:
    """The artefacts of a clip, each kind present with probability p (from the seed's own stream): the
    ones that stay for the whole clip, and a washed-out stretch (its frames and low contrast) or None."""
    arte_rng = np.random.default_rng([seed, 4099])
    art = random_artefacts(arte_rng, p, base) if p else None
    washed = None
    if art is not None and art.low_contrast < 1.0:
        n = int(arte_rng.integers(4, 16))
        s0 = int(arte_rng.integers(0, max(1, frames - n)))
        washed = (range(s0, s0 + n), art.low_contrast)
        art = replace(art, low_contrast=1.0)
    return art, washed


class _Speckle:
    """The speckle of an extension clip: the part that belongs to the tissue slides with it (the
    muscle with its glide), the rest is an AR(1) field that decorrelates more while the tissue moves."""

    def __init__(
        self,
        rng: np.random.Generator,
        tex: Texture,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float],
        decorrelation: float,
        fps: float,
        level: float,
    ):
        h, w = shape
        self.rng, self.tex, self.shape, self.spacing_mm = rng, tex, (h, w), spacing_mm
        self.decorrelation, self.fps, self.level = decorrelation, fps, level
        self.drift = complex_normal(rng, (h, w))
        self.keep = _SPECKLE_KEEP if decorrelation > 0 else 1.0
        self.x = (np.arange(w) + 0.5) * spacing_mm[1]

    def step(self, e: float) -> None:
        """Move the drifting part on by one frame at extension level e (on every frame, frozen or not)."""
        decorrelation, fps = self.decorrelation, self.fps
        # about 1/e per second at rest, faster in proportion to the motion since the last frame
        rho = math.exp(-decorrelation * (1.0 / fps + 4.0 * abs(e - self.level))) if decorrelation > 0 else 1.0
        self.level = e
        fresh = complex_normal(self.rng, self.shape)
        self.drift = _mix(rho, self.drift, math.sqrt(max(0.0, 1 - rho * rho)), fresh)

    def field(self, a: Anatomy) -> np.ndarray:
        """The speckle of a live frame of scene a."""
        tex, (h, _), (sy, sx) = self.tex, self.shape, self.spacing_mm
        slide_px = a.slide_mm / sx
        tissue = tex.window(tex.scatter, slide_px)
        if a.muscle_slide_mm:
            top, vert, _, cos_t = geometry(a, self.x)
            below = (np.arange(h)[:, None] + 0.5) * sy >= (top + vert + a.gap_mm / cos_t)[None, :]
            tissue = np.where(below, tex.window(tex.scatter, slide_px + a.muscle_slide_mm / sx), tissue)
        return _mix(self.keep, tissue, math.sqrt(1 - self.keep * self.keep), self.drift)


def _held(last: Scan) -> Scan:
    """A frozen frame: the last live one repeated exactly (copies of its arrays), marked frozen."""
    return replace(
        last,
        image=last.image.copy(),
        labels=last.labels.copy(),
        thickness_mm=last.thickness_mm.copy(),
        top_px=last.top_px.copy(),
        bottom_px=last.bottom_px.copy(),
        frozen=True,
    )


def extension_clip(
    seed: int,
    frames: int = 150,
    fps: float = 30.0,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str = "default",
    anatomy: Anatomy | None = None,
    wide: bool = False,
    freeze: int | list[tuple[int, int]] = 0,
    freeze_frames: tuple[int, int] = (8, 30),
    artefacts: float = 0.0,
    slide_mm: float | None = None,
    thickness_change: float | None = None,
    decorrelation: float = 1.0,
):
    """Yield `frames` Scans of one scene during trunk extensions, with ground truth on every frame.

    Motion: an extension level E(t) in 0-1 rises, holds and returns (smoothly, at random times).
    With E the tissue slides laterally (up to `slide_mm`, default 1.5-4 mm), the muscle glides
    under the fascia, the TLF thickens by `thickness_change` (relative, default 8-25 %, kept
    within 0.5-3.0 mm) and tilts and ripples a little; the fat is pressed slightly. Everything
    is a smooth function of time, so the true thickness changes smoothly.

    Speckle: most of it moves with the tissue; the rest decorrelates frame to frame, faster
    while the tissue moves (`decorrelation` scales that; 0 keeps the speckle fixed to the tissue).

    freeze: a number of random freeze segments, or explicit (start frame, length) pairs. A frozen
    frame repeats the last live frame exactly (image, labels, truth) with `frozen=True`, as when
    the operator presses freeze; time goes on, so the first live frame after it may jump.

    artefacts: probability of each artefact kind for the clip (a shadow or reverberation stays
    for the whole clip; a washed-out stretch lasts a few frames).
    """
    rng = np.random.default_rng([seed, 5003])
    base = anatomy or random_anatomy(rng, wide=wide)
    m = preset(machine) if isinstance(machine, str) else machine
    h, w = shape
    spacing = (base.depth_mm / h, base.width_mm / w)
    tex = Texture(rng, shape, spacing)
    motion = _Extension.draw(rng, base, frames / fps, slide_mm, thickness_change)
    frozen = _frozen_frames(rng, frames, freeze, freeze_frames)
    art, washed = _clip_artefacts(seed, artefacts, base, frames)
    speckle = _Speckle(rng, tex, shape, spacing, decorrelation, fps, motion.level_at(0.0))
    last: Scan | None = None
    for i in range(frames):
        t = i / fps
        e = motion.level_at(t)
        a = motion.anatomy(t, e)
        speckle.step(e)
        if frozen[i] and last is not None:
            yield _held(last)
            continue
        frame_art = art
        if washed is not None and i in washed[0]:
            assert art is not None  # washed frames are drawn from the artefact set
            frame_art = replace(art, low_contrast=washed[1])
        scan_i = render(
            a,
            m,
            shape,
            seed=seed * 1000 + i,
            _texture=tex,
            _speckle=speckle.field(a),
            artefacts=frame_art if frame_art is not None and frame_art.any else None,
        )
        last = replace(scan_i, extension=float(e), artefacts=frame_art)
        yield last
