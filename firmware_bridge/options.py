"""The display link's settings, checked when they are made.

options = LinkOptions("/dev/serial/by-id/usb-...", baudrate=921600, encoding="auto")
link = DisplayLink(options)         # or DisplayLink(url, baudrate=..., ...): the same keywords
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import ConfigError
from firmware_bridge.messages import Encoding
from firmware_bridge.ports import check_baudrate

ENCODING_NAMES = {"auto": None, **{e.name.lower(): e for e in Encoding if e != Encoding.NONE}}


@dataclass(frozen=True)
class LinkOptions:
    """Settings of one display link.

    ``url`` the port (device path, ``usb:VID:PID[:SERIAL]`` or a pyserial URL); ``baudrate`` its
    speed (None: the port has none, e.g. a socket); ``display_width`` / ``display_height`` the
    display's size until the device tells its own; ``tlf_class`` the class of the fascia in the
    label maps offered; ``encoding`` "auto" (from link rate and device) or one of bounds16,
    bounds_delta, rle, labels2; ``max_rate`` caps frames per second; ``heartbeat_s`` is the idle
    time after which a HEARTBEAT goes out; ``hello_interval_s`` and ``hello_attempts`` space and
    count the HELLOs of a handshake; ``backoff`` the first and longest wait between reconnection
    attempts.
    """

    url: str
    baudrate: int | None = 115200
    display_width: int = 320
    display_height: int = 240
    tlf_class: int = 1
    encoding: str = "auto"
    max_rate: float | None = None
    heartbeat_s: float = 1.0
    hello_interval_s: float = 0.5
    hello_attempts: int = 4
    backoff: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self):
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError(f"display port URL must be a non-empty string, got {self.url!r}")
        if self.baudrate is not None:
            check_baudrate(self.baudrate)
        for name, v in (("display_width", self.display_width), ("display_height", self.display_height)):
            if not isinstance(v, int) or not 1 <= v <= 0xFFFE:
                raise ConfigError(f"{name} must be an integer in 1..65534, got {v!r}")
        if self.encoding not in ENCODING_NAMES:
            raise ConfigError(f"encoding must be one of {sorted(ENCODING_NAMES)!r}, got {self.encoding!r}")
        if self.max_rate is not None and not self.max_rate > 0:
            raise ConfigError(f"max_rate must be positive, got {self.max_rate!r}")
        if not self.heartbeat_s > 0 or not self.hello_interval_s > 0:
            raise ConfigError(
                f"heartbeat_s and hello_interval_s must be positive, got {self.heartbeat_s!r} and "
                f"{self.hello_interval_s!r}"
            )
        if not 0 < self.backoff[0] <= self.backoff[1]:
            raise ConfigError(f"backoff must be (first, longest) with 0 < first <= longest, got {self.backoff!r}")

    @property
    def forced_encoding(self) -> Encoding | None:
        """The encoding every mask must use, None for "auto"."""
        return ENCODING_NAMES[self.encoding]

    @property
    def nominal_bps(self) -> float | None:
        """Bytes per second the baud rate allows (8N1: ten bits a byte), None without one."""
        return self.baudrate / 10 if self.baudrate else None
