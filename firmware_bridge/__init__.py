"""Serial bridge between the tlf-edge runtime and the cart display's microcontroller.

Self-contained: standard library, numpy and pyserial only. The wire format is specified in
PROTOCOL.md next to this file; the C decoder for the firmware lives in ``c/``.
"""

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION"]
