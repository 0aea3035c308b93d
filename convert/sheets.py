"""Pictures for looking, not measuring: the phantom contact sheet (samples of each scanner preset
beside their label maps, an extension clip and a scanner screen) and the augmentation sheet's
command (convert.augment.augment_sheet draws it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convert.errors import ConvertError
from convert.inputs import dataset_config
from convert.options import checked_preset

MASK_COLOURS_BGR = np.array([(70, 40, 20), (40, 200, 255), (60, 120, 40)], np.uint8)  # above, TLF, below


def contact_sheet(
    seed: int = 0,
    presets=("default", "l15_fine", "l6_deep", "rf_10mhz", "low_gain", "washed_out"),
    per_row: int = 2,
    tile: int = 140,
    wide: bool = False,
    artefacts: float = 0.0,
) -> np.ndarray:
    """A BGR picture: per preset a row of phantom B-modes beside their label maps, a strip of an
    extension clip (with a freeze) and one whole scanner screen. For looking, not for measuring."""
    import cv2

    from edge.sim import phantom, phantom_screen

    font, label_w = cv2.FONT_HERSHEY_SIMPLEX, 112

    def text(img, s, org, scale=0.42, colour=(235, 235, 235)):
        cv2.putText(img, s, org, font, scale, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(img, s, org, font, scale, colour, 1, cv2.LINE_AA)

    def as_tile(scan_):
        img = cv2.resize(scan_.image, (tile, tile), interpolation=cv2.INTER_AREA)
        lab = cv2.resize(scan_.labels, (tile, tile), interpolation=cv2.INTER_NEAREST_EXACT)
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), MASK_COLOURS_BGR[lab]

    width = label_w + per_row * 2 * tile
    rows: list[np.ndarray] = []
    for r, name in enumerate(presets):
        m = checked_preset(name)
        row = np.full((tile, width, 3), 24, np.uint8)
        text(row, name, (6, 20), 0.5)
        desc = [f"{m.dynamic_range_db:.0f} dB DR", f"gain {m.gain_db:+.0f}"]
        desc.append(f"focus {m.focus_mm:.0f} mm" if m.focus_mm else "no focus")
        desc.append(f"RF {m.rf_mhz:.0f} MHz" if m.rf_mhz else f"PSF {m.axial_psf_mm:.2f} mm")
        for j, d in enumerate(desc):
            text(row, d, (6, 44 + 18 * j), 0.36, (190, 190, 190))
        for k in range(per_row):
            sc = phantom.scan(seed + 100 * r + k, machine=m, wide=wide, artefacts=artefacts)
            img, mask = as_tile(sc)
            x0 = label_w + 2 * k * tile
            row[:, x0 : x0 + tile], row[:, x0 + tile : x0 + 2 * tile] = img, mask
            text(row, f"TLF {np.median(sc.thickness_mm):.2f} mm", (x0 + tile + 4, tile - 8), 0.38)
            if sc.artefacts is not None:
                kinds = [
                    n
                    for n, on in (
                        ("shadow", sc.artefacts.shadow_x_mm is not None),
                        ("reverb", sc.artefacts.reverb_mm is not None),
                        ("washed", sc.artefacts.low_contrast < 1.0),
                    )
                    if on
                ]
                text(row, "+".join(kinds), (x0 + 4, tile - 8), 0.36, (120, 220, 255))
        rows.append(row)

    # A trunk-extension clip: a few frames (every 20th), one inside a freeze.
    frames = list(phantom.extension_clip(seed, frames=100, shape=(256, 256), freeze=[(61, 20)], wide=wide))
    row = np.full((tile, width, 3), 24, np.uint8)
    text(row, "extension", (6, 20), 0.5)
    text(row, "clip, 30 fps", (6, 44), 0.36, (190, 190, 190))
    n_show = 2 * per_row
    for k, i in enumerate(np.linspace(0, 80, n_show).round().astype(int)):
        f = frames[i]
        img, _ = as_tile(f)
        x0 = label_w + k * tile
        row[:, x0 : x0 + tile] = img
        text(row, f"#{i} E {f.extension:.2f}", (x0 + 4, 16), 0.36)
        text(row, f"TLF {np.median(f.thickness_mm):.2f} mm", (x0 + 4, tile - 8), 0.36)
        if f.frozen:
            text(row, "FROZEN", (x0 + tile - 62, 16), 0.38, (80, 80, 255))
    rows.append(row)

    scr = phantom_screen.screen(seed, (1280, 720), machine=presets[0] if presets else None)
    h = round(720 * width / 1280)
    rows.append(cv2.resize(scr.image, (width, h), interpolation=cv2.INTER_AREA))
    sep = np.full((4, width, 3), 60, np.uint8)
    out = [rows[0]]
    for r in rows[1:]:
        out += [sep, r]
    return np.vstack(out)


def write_png(image: np.ndarray, out: Path) -> Path:
    """`image` written to the PNG file `out` (its folder made), or OSError."""
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {str(out)!r}")
    return out


def cmd_contact_sheet(args) -> int:
    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    if not presets or args.per_row < 1 or not 64 <= args.tile <= 512:
        raise ConvertError("need at least one preset, --per-row >= 1 and --tile in 64-512")
    sheet = contact_sheet(args.seed, presets, args.per_row, args.tile, args.wide, args.artefacts)
    out = write_png(sheet, Path(args.out))
    print(f"contact sheet {sheet.shape[1]}x{sheet.shape[0]} written to {out} ({out.stat().st_size // 1024} KB)")
    return 0


def cmd_augment_sheet(args) -> int:
    from convert.augment import AugmentOptions, augment_sheet
    from convert.data import iter_dataset
    from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image

    if args.images < 1 or args.per_image < 1 or not 64 <= args.tile <= 512:
        raise ConvertError("need --images >= 1, --per-image >= 1 and --tile in 64-512")
    options = AugmentOptions().without(args.augment_off.split(","))
    spec = PreprocessSpec(height=args.size, width=args.size)
    config = dataset_config(args.data, args.dataset_config)
    names: list[str]
    names, images, labels = [], [], []
    for stem, img, lab in iter_dataset(Path(args.data), config):
        if len(names) >= args.images:
            break
        names.append(stem)
        images.append(to_model_image(img, spec))
        labels.append(resize_labels(lab, spec))
    sheet = augment_sheet(np.stack(images), np.stack(labels), names, options, args.seed, args.per_image, args.tile)
    out = write_png(sheet, Path(args.out))
    print(
        f"augment sheet {sheet.shape[1]}x{sheet.shape[0]} ({len(names)} images, {args.per_image} augmented copies "
        f"each; parts on: {', '.join(options.active) or 'none'}) written to {out}"
    )
    return 0
