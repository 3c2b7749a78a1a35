"""Presenter mode's rooms: a presenter's current subnet and the latencies the audience's browsers measured for it.

A room is keyed by a short random code (what the QR code's join URL carries). It holds the presenter's current view
(a subnet config in its compact form and a hardware target name) and, per joined device — an opaque id the app makes
for each browser session — only three things: its browser/OS family ("Chrome on Android", from fixed lists, never the
user agent itself), the last latency it measured and for which config, and when.

Everything here comes from a browser sooner or later, so everything is validated before anything is stored: a
refusal is a :class:`RoomError` whose message is one line for people, and then nothing at all has changed.

Bounded and in memory (:class:`InMemoryRooms`): at most :data:`MAX_DEVICES` devices per room — a full room refuses
new devices politely, devices already in it can still update — and at most :data:`MAX_ROOMS` rooms (opening one more
drops the room idle the longest); a room idle for :data:`IDLE_SECONDS` is gone too. Nothing survives a restart.
:class:`Rooms` is the interface the pages use; replicas share one Redis-backed store instead
(:mod:`app.room_redis`, chosen by ``$OFA_EXPLORER_ROOMS``, set by ``make serve REPLICAS=N``).
"""

from __future__ import annotations

import math
import re
import secrets
import statistics
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from app.space import SubnetConfig

MAX_DEVICES = 500  # devices per room
MAX_ROOMS = 20  # rooms per server process; opening one more drops the room idle the longest
IDLE_SECONDS = 8 * 3600.0  # a room nobody touched for this long is gone
MAX_LATENCY_MS = 600_000.0  # 10 minutes for one forward pass: anything above is not a measurement
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed from a slide
CODE_LENGTH = 6
ROOM_CODE = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
DEVICE_ID = re.compile(r"^[0-9a-f]{16,64}$")  # made by the app per browser session (secrets.token_hex)
FAMILY = re.compile(r"^[A-Za-z][A-Za-z0-9 .()/+-]{0,59}$")  # "Chrome on Android", "a browser on an unknown system"
HARDWARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # letters, digits, - _ . (as calibrate-hardware allows)
MAX_CONFIG_CHARS = 200  # the compact form is 56 characters


class RoomError(ValueError):
    """Something a room cannot accept (one line for people); nothing was stored."""


class UnknownRoom(RoomError):
    """No open room has this code (never opened, idle too long, dropped for a newer one, or the server restarted)."""


class RoomFull(RoomError):
    """The room holds :data:`MAX_DEVICES` devices already."""


UNKNOWN_ROOM = "This room is not open (any more): ask the presenter to show the QR code again."


def room_full(max_devices: int) -> RoomFull:
    return RoomFull(f"This room is full ({max_devices} devices have joined already), sorry: "
                    "your device was not added, nothing was kept.")


@dataclass(frozen=True)
class Device:
    """One joined device's last measurement."""

    family: str  # browser/OS family
    config: str  # compact config it measured
    latency_ms: float
    at: float  # wall-clock time of the report (seconds since the epoch)


@dataclass(frozen=True)
class RoomView:
    """A snapshot of one room."""

    code: str
    config: str  # the presenter's current subnet (compact)
    hardware: str  # the presenter's hardware target
    devices: tuple[Device, ...]  # in the order they joined

    def measured(self, config: str | None = None) -> tuple[Device, ...]:
        """The devices whose last measurement is of ``config`` (default: the presenter's current one)."""
        want = self.config if config is None else config
        return tuple(d for d in self.devices if d.config == want)

    def median_ms(self, config: str | None = None) -> float | None:
        got = [d.latency_ms for d in self.measured(config)]
        return float(statistics.median(got)) if got else None


# ----------------------------------------------------------------------------------------------- validation
def check_code(code) -> str:
    if not isinstance(code, str) or not ROOM_CODE.match(code):
        raise RoomError(f"That is not a room code: a room code is {CODE_LENGTH} capital letters and digits, "
                        "as under the presenter's QR code.")
    return code


def check_device_id(device_id) -> str:
    if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
        raise RoomError("That device name is not one this app made; nothing was kept.")
    return device_id


def check_family(family) -> str:
    if not isinstance(family, str) or not FAMILY.match(family):
        raise RoomError("That browser name is not one this app shows; nothing was kept.")
    return family


def check_config(config) -> str:
    """The compact form of ``config`` (a subnet config as text)."""
    if not isinstance(config, str) or not config.strip() or len(config) > MAX_CONFIG_CHARS:
        raise RoomError("That is not a subnet of this app's search space; nothing was kept.")
    try:
        return SubnetConfig.parse(config).to_compact()
    except (ValueError, TypeError, KeyError, IndexError):
        raise RoomError("That is not a subnet of this app's search space; nothing was kept.") from None


def check_hardware(hardware) -> str:
    if not isinstance(hardware, str) or not HARDWARE.match(hardware):
        raise RoomError("That is not a hardware target name; nothing was kept.")
    return hardware


def check_latency(latency_ms) -> float:
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)):
        raise RoomError("The latency is not a number; nothing was kept.")
    value = float(latency_ms)
    if not math.isfinite(value):
        raise RoomError("The latency is not a finite number; nothing was kept.")
    if value <= 0:
        raise RoomError("The latency is not above zero, so it is not a measurement; nothing was kept.")
    if value >= MAX_LATENCY_MS:
        raise RoomError(f"The latency is {MAX_LATENCY_MS / 60_000:.0f} minutes or more, not a measurement; "
                        "nothing was kept.")
    return value


def new_device_id() -> str:
    """An opaque id for one browser session's device (nothing about the device is in it)."""
    return secrets.token_hex(8)


# ----------------------------------------------------------------------------------------------- the interface
@runtime_checkable
class Rooms(Protocol):
    """Where rooms live. Every method validates its arguments and raises :class:`RoomError` (one line, nothing
    stored) for anything it cannot accept; :class:`UnknownRoom` for a code that is not open."""

    def open(self, config: str, hardware: str) -> str:
        """A new room showing ``config`` on ``hardware``; returns its code."""

    def present(self, code: str, config: str, hardware: str) -> None:
        """The presenter now shows ``config`` on ``hardware``."""

    def view(self, code: str) -> RoomView:
        """A snapshot of the room."""

    def report(self, code: str, device_id: str, family: str, config: str, latency_ms: float) -> Device:
        """Device ``device_id`` (of browser/OS ``family``) measured ``latency_ms`` for ``config``: it joins the room
        or updates its entry. :class:`RoomFull` for a new device when the room is full."""

    def leave(self, code: str, device_id: str) -> bool:
        """Forget ``device_id``'s entry in the room; whether there was one."""


# ----------------------------------------------------------------------------------------------- in memory
@dataclass
class _Room:
    config: str
    hardware: str
    touched: float
    devices: "OrderedDict[str, Device]"


class InMemoryRooms:
    """:class:`Rooms` in this process's memory: bounded, thread-safe, gone on restart."""

    def __init__(self, *, max_rooms: int = MAX_ROOMS, max_devices: int = MAX_DEVICES, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_rooms < 1 or max_devices < 1 or not idle_seconds > 0:
            raise ValueError("rooms: the bounds must be positive")
        self.max_rooms, self.max_devices, self.idle_seconds = max_rooms, max_devices, idle_seconds
        self._clock = clock
        self._rooms: "OrderedDict[str, _Room]" = OrderedDict()  # least recently touched first
        self._lock = threading.Lock()

    # -- internals (hold the lock)
    def _expire(self, now: float) -> None:
        while self._rooms:
            code, room = next(iter(self._rooms.items()))
            if now - room.touched < self.idle_seconds:
                break
            del self._rooms[code]

    def _get(self, code: str, now: float) -> _Room:
        self._expire(now)
        room = self._rooms.get(code)
        if room is None:
            raise UnknownRoom(UNKNOWN_ROOM)
        return room

    def _touch(self, code: str, room: _Room, now: float) -> None:
        room.touched = now
        self._rooms.move_to_end(code)

    # -- the interface
    def open(self, config: str, hardware: str) -> str:
        config, hardware = check_config(config), check_hardware(hardware)
        with self._lock:
            now = self._clock()
            self._expire(now)
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            while code in self._rooms:
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            while len(self._rooms) >= self.max_rooms:
                self._rooms.popitem(last=False)  # the room idle the longest
            self._rooms[code] = _Room(config, hardware, now, OrderedDict())
            return code

    def present(self, code: str, config: str, hardware: str) -> None:
        code, config, hardware = check_code(code), check_config(config), check_hardware(hardware)
        with self._lock:
            now = self._clock()
            room = self._get(code, now)
            room.config, room.hardware = config, hardware
            self._touch(code, room, now)

    def view(self, code: str) -> RoomView:
        code = check_code(code)
        with self._lock:
            now = self._clock()
            room = self._get(code, now)
            self._touch(code, room, now)  # a room someone is looking at is in use
            return RoomView(code, room.config, room.hardware, tuple(room.devices.values()))

    def report(self, code: str, device_id: str, family: str, config: str, latency_ms: float) -> Device:
        code, device_id = check_code(code), check_device_id(device_id)
        family, config, latency = check_family(family), check_config(config), check_latency(latency_ms)
        with self._lock:
            now = self._clock()
            room = self._get(code, now)
            if device_id not in room.devices and len(room.devices) >= self.max_devices:
                raise room_full(self.max_devices)
            entry = Device(family, config, latency, time.time())
            room.devices[device_id] = entry
            self._touch(code, room, now)
            return entry

    def leave(self, code: str, device_id: str) -> bool:
        code, device_id = check_code(code), check_device_id(device_id)
        with self._lock:
            room = self._get(code, self._clock())
            return room.devices.pop(device_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._rooms)


ROOMS_URL_ENV = "OFA_EXPLORER_ROOMS"  # e.g. redis://127.0.0.1:6379/0 (set by `make serve REPLICAS=N`)
_store: Rooms | None = None
_store_lock = threading.Lock()


def make_rooms(url: str | None) -> Rooms:
    """The store ``url`` names: empty → in this process's memory; ``redis://…`` → shared by every replica using it
    (:class:`app.room_redis.RedisRooms`). Anything else is a start-up error (one line)."""
    if not url:
        return InMemoryRooms()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from app.room_redis import RedisRooms

        return RedisRooms(url)
    raise ValueError(f"{ROOMS_URL_ENV} must be empty or a redis:// URL, got {url[:80]!r}")


def rooms() -> Rooms:
    """The rooms the app uses: the store ``$OFA_EXPLORER_ROOMS`` names, made once per process."""
    global _store
    if _store is None:
        import os

        with _store_lock:
            if _store is None:
                _store = make_rooms(os.environ.get(ROOMS_URL_ENV, "").strip())
    return _store
