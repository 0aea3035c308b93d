"""Consistent Overhead Byte Stuffing over whole buffers (host side and tests), from the `cobs`
package, with this package's error type.

The device side decodes COBS byte by byte inside its framing state machine (framing.py).
"""

from __future__ import annotations

from cobs import cobs as _cobs

from firmware_bridge.errors import ProtocolError


def encode(data: bytes) -> bytes:
    """`data` with every zero removed: blocks of up to 254 bytes, each led by its length + 1."""
    return _cobs.encode(bytes(data))


def decode(data: bytes) -> bytes:
    """Inverse of `encode` for one frame without delimiters; ProtocolError if it is not valid COBS."""
    try:
        return _cobs.decode(bytes(data))
    except _cobs.DecodeError as e:
        raise ProtocolError(f"invalid COBS frame of {len(data)!r} bytes: {e}") from e
