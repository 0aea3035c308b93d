"""The runtime's exception family: each message is one line a user can act on."""


class EdgeError(Exception):
    """Base of every error the device runtime reports to its user."""


class BundleError(EdgeError):
    """A model bundle is missing, malformed, tampered with or of an unknown schema."""


class SourceError(EdgeError):
    """A frame source cannot be opened or has stopped delivering frames."""


class ConfigError(EdgeError):
    """A configuration file or option is malformed."""


class SinkError(EdgeError):
    """An output (display, recording, log) failed."""
