"""The runtime's exception family: each message is one line a user can act on."""


class EdgeError(Exception):
    """Base of every error the device runtime reports to its user."""


class BundleError(EdgeError):
    """A model bundle is missing, malformed, tampered with or of an unknown schema."""


class SourceError(EdgeError):
    """A frame source cannot be opened or has stopped delivering frames."""


class ConfigError(EdgeError):
    """A configuration file or option is malformed."""


def require_option(section: str, key: str, value, ok: bool, why: str) -> None:
    """ConfigError naming the [section] key and the value given, unless `ok`."""
    if not ok:
        raise ConfigError(f"[{section}] {key}: {why}, got {value!r}")


class RunFailed(EdgeError):
    """A run that went but failed: it measured nothing, or its log or summary could not be written.
    The command line exits 1 for it (2 is for bad input refused before anything ran)."""


class SinkError(EdgeError):
    """An output (display, recording, log) failed."""


class SignalLost(SourceError):
    """A live source has lost its device and is reopening it with backoff.

    Not the end of the run: the caller waits `retry_in` seconds (interruptibly) and reads again;
    the source's next `read()` tries to reopen the device once that time is due.
    """

    def __init__(self, message: str, retry_in: float):
        super().__init__(message)
        self.retry_in = float(retry_in)
