"""The converter's exception family: a user error is one line (`tlf-convert: error: ...`), a
programming error stays a traceback."""

from __future__ import annotations


class ConvertError(Exception):
    """Bad input to the converter, said in one line."""


class QuantizeError(ConvertError):
    """The model or its calibration set cannot make a trustworthy int8 model."""


class MissingExtra(ConvertError):
    """A command needs a package of an optional extra that is not installed."""


# The top-level modules each extra brings, by extra.
EXTRA_OF_MODULE = {
    "tensorflow": "convert",
    "keras": "convert",
    "matplotlib": "convert",
    "tf_keras": "convert",
    "pydicom": "dicom",
}


def missing_extra(error: ImportError, what: str) -> MissingExtra | None:
    """The MissingExtra an ImportError of an extra's module means, or None for any other import error."""
    root = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return None
    return MissingExtra(f"{what} needs the [{extra}] extra: pip install 'tlf-edge[{extra}]' ({root} is not installed)")
