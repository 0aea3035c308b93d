"""The bridge's exception family: each message is one line naming the bad value."""


class BridgeError(Exception):
    """Base of every error the serial bridge reports."""


class LinkError(BridgeError):
    """A display port cannot be found, opened, written or read."""


class PortBusy(LinkError):
    """A display port that another program holds (its exclusive lock is taken): a second runtime
    writing to the same display would interleave two streams."""


class ProtocolError(BridgeError):
    """Bytes or a payload that break the wire protocol."""


class MaskError(BridgeError):
    """A label map or boundary array that cannot be encoded, or mask data that cannot be decoded."""


class ConfigError(BridgeError):
    """A bridge option is out of range or a combination of options is inconsistent."""
