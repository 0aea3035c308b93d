"""A B-mode phantom of the low back: layered tissue with a known TLF, and slow clips of it.

numpy and OpenCV only. Everything is deterministic for a seed. Geometry is analytic (mm), so
the label map and the true TLF thickness per column are exact, not estimated.

Layers, top to bottom: skin, subcutaneous fat with bright septa, the TLF (a bright band of 1-3
sublayers), a thin dark gap, the thin epimysial fascia line (class 2, below the TLF), fibrillar
muscle. Classes: 0 above the TLF, 1 the TLF, 2 below.

Everything added after the first demo model is opt-in and off by default, so `scan`, `render` and
`clip` with their default arguments give exactly the pictures that model was trained on
(tests/test_phantom_pinned.py pins them bit for bit). The options:
- Machine: a focal zone (`focus_mm`: the lateral PSF widens away from the focal depth) and an RF
  line (`rf_mhz`: a carrier-modulated pulse, then envelope detection); `probe(mhz)` sets the
  resolution and attenuation of a probe frequency; more named PRESETS.
- Anatomy: `random_anatomy(rng, wide=True)` draws a wider range of scenes (fat 3-25 mm, tilt up
  to +-10 degrees, a second ripple, varied echogenicity); `Artefacts` adds an acoustic shadow,
  reverberation lines or a washed-out frame (`random_artefacts(rng, p)`, `scan(..., artefacts=p)`).
- Video: `extension_clip` moves the scene like a trunk extension (layers slide against each
  other, the TLF thickens and thins smoothly), decorrelates the speckle with the motion and
  holds the picture during freeze segments (Scan.frozen is set on those frames).

This module is the simulator's public face: it re-exports what callers use from the modules
that hold it, each of one concern:
- `edge.sim.anatomy`: the scene (Anatomy, random_anatomy, wide_anatomy, the label classes).
- `edge.sim.machine`: the scanner (Machine, probe, PRESETS, preset, random_machine) and its
  beamforming (focal zone, RF line).
- `edge.sim.texture`: the random fields that move with the tissue (speckle, fibres, septa).
- `edge.sim.tissue`: the echo of each layer (the reflectivity and label maps).
- `edge.sim.artefacts`: shadows, reverberations and washed-out frames.
- `edge.sim.render`: one frame through the B-mode chain (render, scan, Scan).
- `edge.sim.clips`: scenes moving over time (clip, extension_clip, freeze segments).
"""

from __future__ import annotations

from edge.sim.anatomy import ABOVE, BELOW, TLF, Anatomy, random_anatomy, wide_anatomy
from edge.sim.artefacts import Artefacts, random_artefacts
from edge.sim.clips import clip, extension_clip, extension_level, freeze_segments
from edge.sim.machine import PRESETS, SPEED_OF_SOUND_MM_US, Machine, preset, probe, random_machine
from edge.sim.render import Scan, render, scan

__all__ = [
    "ABOVE",
    "Anatomy",
    "Artefacts",
    "BELOW",
    "Machine",
    "PRESETS",
    "SPEED_OF_SOUND_MM_US",
    "Scan",
    "TLF",
    "clip",
    "extension_clip",
    "extension_level",
    "freeze_segments",
    "preset",
    "probe",
    "random_anatomy",
    "random_artefacts",
    "random_machine",
    "render",
    "scan",
    "wide_anatomy",
]
