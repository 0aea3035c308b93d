"""What `tlf-edge analyze` was given: the clips in its files, folders and glob patterns, and the
content hash that names each one.

A clip is one DICOM file (single or multi-frame), one video file, one recording of the cart
(every part file and its sidecar, edge.sources.recording), or the images of one folder (in
natural name order). Folders are searched through; in them, a file is a clip by its suffix
(DICOM also without one, by the "DICM" marker at byte 128), other files are passed over, and so
are hidden folders, the cart's run folders (frames.jsonl and summary.json: measurements, not
pictures) and folders `tlf-edge analyze` wrote. A file named on the command line that is no
clip is listed as failed, with the reason.

The content hash: for a clip of one file the sha256 of its bytes (the clip id is its first 16
hex digits, as `sha256sum FILE` prints them); for a clip of several files the sha256 of their
digests in clip order, so renaming a folder or its files in the same order keeps the id.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError, SourceError
from edge.sources.folder import IMAGE_SUFFIXES, _natural_key, _regular
from edge.sources.recording import read_sidecar, recording_of
from edge.sources.video import VIDEO_SUFFIXES

DICOM_SUFFIXES = (".dcm", ".dicom")
ANALYSIS_MARKER = "analysis.json"  # the run file of an analysis folder: such folders are not inputs
ID_HEX = 16  # hex digits of the content hash in a clip id


@dataclass(frozen=True)
class Clip:
    """One clip to analyse. kind: "dicom", "video", "recording", "images" or "unknown" (a file
    named on the command line that is no clip; `error` says why). path: its file, or its folder
    (images). files: the files whose bytes make it, in order. name: a readable name (shown only
    with --keep-names)."""

    kind: str
    path: str
    files: tuple[str, ...]
    name: str
    error: str = ""


def is_dicom(path: Path) -> bool:
    """A DICOM file by its suffix, or by the DICM marker of its preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def skipped_folder(folder: Path) -> str | None:
    """Why a folder met while searching is not searched (None: it is)."""
    if folder.name.startswith("."):
        return "hidden"
    if (folder / ANALYSIS_MARKER).is_file():
        return "an analysis folder"
    if (folder / "frames.jsonl").is_file() and (folder / "summary.json").is_file():
        return "a tlf-edge run folder (its recordings are in the [recording] path)"
    return None


def _recording_clip(video: Path) -> Clip:
    first = recording_of(video)
    assert first is not None  # file_clip calls it for the video of a recording
    name = first.name
    try:
        _, lines = read_sidecar(first)
    except SourceError as e:
        return Clip("recording", str(first), (str(first),), name, str(e))
    parts = list(dict.fromkeys(line["file"] for line in lines)) or [first.name]
    files = [first.with_name(p) for p in parts]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        return Clip("recording", str(first), (str(first),), name, f"the recording's part {missing[0]!r} is missing")
    from edge.sinks.recording import sidecar_path

    return Clip("recording", str(first), tuple(str(f) for f in files) + (str(sidecar_path(first)),), name)


# How the cart names its recordings (edge.sinks.recording.RecordingSink.in_folder, later parts -partN).
CART_RECORDING = re.compile(r"^tlf-\d{8}-\d{6}(-part\d+)?\.avi$")


def file_clip(path: Path, named: bool) -> Clip | None:
    """The clip of one file (None: not a clip; with `named`, a failed clip saying so)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if recording_of(path) is not None:
            return _recording_clip(path)
        if CART_RECORDING.match(path.name):  # a cart recording made before sidecars: overlay drawn in, no spacing
            return Clip(
                "recording",
                str(path),
                (str(path),),
                path.name,
                "a cart recording without its sidecar (.jsonl): its frames carry the overlay and no spacing, "
                "so it cannot be measured again",
            )
        return Clip("video", str(path), (str(path),), path.name)
    if is_dicom(path):
        return Clip("dicom", str(path), (str(path),), path.name)
    if suffix in IMAGE_SUFFIXES and named:
        return Clip("images", str(path), (str(path),), path.name)
    if named:
        return Clip("unknown", str(path), (str(path),), path.name, "not a DICOM, video or image file")
    return None


def _folder_clips(top: Path, skip: set[Path], notes: list[str]) -> list[Clip]:
    clips = []
    for root, dirs, files in os.walk(top):
        here = Path(root)
        kept = []
        for d in sorted(dirs, key=_natural_key):
            sub = here / d
            why = "the output folder" if sub.resolve() in skip else skipped_folder(sub)
            if why is None:
                kept.append(d)
            elif why != "hidden":
                notes.append(f"{sub}: not searched ({why})")
        dirs[:] = kept
        images = []
        for f in sorted(files, key=_natural_key):
            p = here / f
            if f.startswith(".") or not _regular(p):
                continue
            if p.suffix.lower() in IMAGE_SUFFIXES:
                images.append(str(p))
                continue
            clip = file_clip(p, named=False)
            if clip is not None:
                clips.append(clip)
        if images:
            clips.append(Clip("images", str(here), tuple(images), here.name or str(here)))
    return clips


def find_clips(inputs: list[str], out: Path | None = None) -> tuple[list[Clip], list[str]]:
    """The clips of `inputs` (files, folders, glob patterns) in the order given, each once (a
    recording met through two of its parts, or a file given twice, counts once); and notes on
    the folders passed over. EdgeError for an input that matches nothing."""
    skip = {out.resolve()} if out is not None else set()
    clips: list[Clip] = []
    notes: list[str] = []
    for text in inputs:
        p = Path(text).expanduser()
        if p.is_dir():
            if p.resolve() in skip:
                raise EdgeError(f"{text!r} is the output folder; give the clips' folders")
            clips += _folder_clips(p, skip, notes)
        elif p.exists():
            named = file_clip(p, named=True)
            assert named is not None  # a file given by name is a clip, failed or not
            clips.append(named)
        elif glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True), key=_natural_key)
            if not matches:
                raise EdgeError(f"{text!r} matches no file or folder")
            images: dict[str, list[str]] = {}
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    clips += _folder_clips(mp, skip, notes)
                elif mp.suffix.lower() in IMAGE_SUFFIXES:
                    images.setdefault(str(mp.parent), []).append(m)
                elif (clip := file_clip(mp, named=False)) is not None:
                    clips.append(clip)
            for folder, files in images.items():
                clips.append(Clip("images", folder, tuple(files), Path(folder).name or folder))
        else:
            raise EdgeError(f"no such file or folder {text!r}")
    seen, unique = set(), []
    for c in clips:
        key = (c.kind, c.files)
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique, notes


def content_hash(clip: Clip) -> str:
    """The sha256 (hex) of a clip's content (see the module docstring); OSError when a file
    cannot be read."""
    digests = [_file_sha256(f) for f in clip.files]
    if len(digests) == 1:
        return digests[0].hex()
    return hashlib.sha256(b"".join(digests)).hexdigest()


def _file_sha256(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clip_id(clip: Clip, digest: str, keep_names: bool) -> str:
    """The clip's folder name in the output: its content hash, or with --keep-names its name
    (made safe for a file name) and the start of the hash."""
    if not keep_names:
        return digest[:ID_HEX]
    stem = _UNSAFE.sub("_", Path(clip.name).stem if clip.kind != "images" else clip.name).strip("._") or "clip"
    return f"{stem[:60]}-{digest[:8]}"
