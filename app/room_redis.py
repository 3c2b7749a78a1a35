"""Presenter rooms in Redis: the :class:`~app.room.Rooms` store that several app replicas share.

``make serve REPLICAS=2`` (``app/ui/replicas.py``) starts a Redis server on loopback and points every replica at it
with ``OFA_EXPLORER_ROOMS=redis://127.0.0.1:PORT/0``; a presenter on one replica and an audience spread over all of
them then see one room. One process alone keeps rooms in memory (:class:`~app.room.InMemoryRooms`).

Same contract as the in-memory store, bounds included: every argument is validated in Python first (the same
``check_*`` functions), and each operation is one Lua script, so it is atomic across replicas — a full room cannot
be overfilled by two replicas at once, an expired room is gone for everyone. Layout, under ``KEY_PREFIX``:

- ``room:<code>`` (hash): ``config``, ``hardware``, ``touched`` (seconds, the store's clock), ``joined`` (a counter);
- ``room:<code>:devices`` (hash): device id -> ``<join number>|<json of the Device>`` (join order is kept);
- ``rooms`` (sorted set): code by ``touched`` — the least recently touched room goes first when there are too many.

Both keys of a room also carry a Redis TTL of the idle time, so an abandoned room disappears even if no replica ever
looks again. If Redis cannot be reached, a call raises :class:`RoomStoreUnavailable` (one line; nothing changed).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Callable

from app.room import (CODE_ALPHABET, CODE_LENGTH, IDLE_SECONDS, MAX_DEVICES, MAX_ROOMS, UNKNOWN_ROOM, Device,
                      RoomError, RoomView, UnknownRoom, check_code, check_config, check_device_id, check_family,
                      check_hardware, check_latency, room_full)

KEY_PREFIX = "ofa-explorer:"

# KEYS[1] = the rooms index; ARGV[1] = prefix, ARGV[2] = now, ARGV[3] = idle seconds. Drops rooms idle too long.
_EXPIRE = """
local function drop(index, prefix, code)
  redis.call('DEL', prefix .. 'room:' .. code, prefix .. 'room:' .. code .. ':devices')
  redis.call('ZREM', index, code)
end
local function expire(index, prefix, now, idle)
  for _, code in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now - idle)) do
    drop(index, prefix, code)
  end
end
local function touch(index, prefix, code, now, idle)
  local ms = math.floor(idle * 1000)
  redis.call('HSET', prefix .. 'room:' .. code, 'touched', now)
  redis.call('PEXPIRE', prefix .. 'room:' .. code, ms)
  redis.call('PEXPIRE', prefix .. 'room:' .. code .. ':devices', ms)
  redis.call('ZADD', index, now, code)
end
local index, prefix, now, idle = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
expire(index, prefix, now, idle)
"""

# ARGV[4] = code, [5] config, [6] hardware, [7] max rooms -> 1 opened, 0 the code is taken
_OPEN = _EXPIRE + """
local code = ARGV[4]
if redis.call('EXISTS', prefix .. 'room:' .. code) == 1 then return 0 end
while redis.call('ZCARD', index) >= tonumber(ARGV[7]) do
  drop(index, prefix, redis.call('ZRANGE', index, 0, 0)[1])
end
redis.call('HSET', prefix .. 'room:' .. code, 'config', ARGV[5], 'hardware', ARGV[6], 'joined', 0)
touch(index, prefix, code, now, idle)
return 1
"""

# ARGV[4] = code, [5] config, [6] hardware -> 1, or 0 for an unknown room
_PRESENT = _EXPIRE + """
local code = ARGV[4]
if redis.call('EXISTS', prefix .. 'room:' .. code) == 0 then return 0 end
redis.call('HSET', prefix .. 'room:' .. code, 'config', ARGV[5], 'hardware', ARGV[6])
touch(index, prefix, code, now, idle)
return 1
"""

# ARGV[4] = code -> {config, hardware, {device values...}} or false for an unknown room
_VIEW = _EXPIRE + """
local code = ARGV[4]
local room = prefix .. 'room:' .. code
if redis.call('EXISTS', room) == 0 then return false end
touch(index, prefix, code, now, idle)
return {redis.call('HGET', room, 'config'), redis.call('HGET', room, 'hardware'),
        redis.call('HVALS', room .. ':devices')}
"""

# ARGV[4] = code, [5] device id, [6] entry json, [7] max devices -> 1 stored, 0 unknown room, -1 room full
_REPORT = _EXPIRE + """
local code = ARGV[4]
local room = prefix .. 'room:' .. code
if redis.call('EXISTS', room) == 0 then return 0 end
local devices = room .. ':devices'
local old = redis.call('HGET', devices, ARGV[5])
local n
if old then
  n = string.match(old, '^(%d+)|')
else
  if redis.call('HLEN', devices) >= tonumber(ARGV[7]) then return -1 end
  n = redis.call('HINCRBY', room, 'joined', 1)
end
redis.call('HSET', devices, ARGV[5], n .. '|' .. ARGV[6])
touch(index, prefix, code, now, idle)
return 1
"""

# ARGV[4] = code, [5] device id -> 1 removed, 0 not there, -2 unknown room
_LEAVE = _EXPIRE + """
local room = prefix .. 'room:' .. ARGV[4]
if redis.call('EXISTS', room) == 0 then return -2 end
return redis.call('HDEL', room .. ':devices', ARGV[5])
"""

_COUNT = _EXPIRE + """
return redis.call('ZCARD', index)
"""


class RoomStoreUnavailable(RoomError):
    """The shared store (Redis) did not answer; nothing was changed."""


class RedisRooms:
    """:class:`~app.room.Rooms` in a Redis server, shared by every replica that uses the same URL.

    ``clock`` is wall-clock seconds (replicas on one machine, or NTP-synchronised ones, agree on it); tests pass a
    fake one, as for :class:`~app.room.InMemoryRooms`.
    """

    def __init__(self, url: str, *, max_rooms: int = MAX_ROOMS, max_devices: int = MAX_DEVICES,
                 idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.time,
                 prefix: str = KEY_PREFIX, timeout: float = 2.0) -> None:
        import redis

        if max_rooms < 1 or max_devices < 1 or not idle_seconds > 0:
            raise ValueError("rooms: the bounds must be positive")
        self.max_rooms, self.max_devices, self.idle_seconds = max_rooms, max_devices, idle_seconds
        self.url, self.prefix = url, prefix
        self._clock = clock
        # a bounded pool of connections, shared by the replica's sessions (thread-safe)
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           max_connections=32, decode_responses=True)
        self._scripts = {name: self._redis.register_script(src) for name, src in
                         (("open", _OPEN), ("present", _PRESENT), ("view", _VIEW), ("report", _REPORT),
                          ("leave", _LEAVE), ("count", _COUNT))}

    def _run(self, name: str, *args) -> object:
        import redis

        try:
            return self._scripts[name](keys=[self.prefix + "rooms"],
                                       args=[self.prefix, repr(float(self._clock())), repr(float(self.idle_seconds)), *args])
        except redis.exceptions.RedisError:
            raise RoomStoreUnavailable("The rooms' shared store is not answering just now; nothing was changed — "
                                       "try again in a moment.") from None

    def ping(self) -> bool:
        """Whether the store answers."""
        import redis

        try:
            return bool(self._redis.ping())
        except redis.exceptions.RedisError:
            return False

    # -- the interface
    def open(self, config: str, hardware: str) -> str:
        config, hardware = check_config(config), check_hardware(hardware)
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if self._run("open", code, config, hardware, self.max_rooms) == 1:
                return code

    def present(self, code: str, config: str, hardware: str) -> None:
        code, config, hardware = check_code(code), check_config(config), check_hardware(hardware)
        if self._run("present", code, config, hardware) != 1:
            raise UnknownRoom(UNKNOWN_ROOM)

    def view(self, code: str) -> RoomView:
        code = check_code(code)
        got = self._run("view", code)
        if not got:
            raise UnknownRoom(UNKNOWN_ROOM)
        config, hardware, values = got
        entries = []
        for value in values:
            number, _, text = value.partition("|")
            d = json.loads(text)
            entries.append((int(number), Device(d["family"], d["config"], float(d["latency_ms"]), float(d["at"]))))
        return RoomView(code, config, hardware, tuple(device for _, device in sorted(entries, key=lambda e: e[0])))

    def report(self, code: str, device_id: str, family: str, config: str, latency_ms: float) -> Device:
        code, device_id = check_code(code), check_device_id(device_id)
        family, config, latency = check_family(family), check_config(config), check_latency(latency_ms)
        entry = Device(family, config, latency, time.time())
        text = json.dumps({"family": entry.family, "config": entry.config, "latency_ms": entry.latency_ms,
                           "at": entry.at}, separators=(",", ":"))
        got = self._run("report", code, device_id, text, self.max_devices)
        if got == 0:
            raise UnknownRoom(UNKNOWN_ROOM)
        if got == -1:
            raise room_full(self.max_devices)
        return entry

    def leave(self, code: str, device_id: str) -> bool:
        code, device_id = check_code(code), check_device_id(device_id)
        got = self._run("leave", code, device_id)
        if got == -2:
            raise UnknownRoom(UNKNOWN_ROOM)
        return got == 1

    def __len__(self) -> int:
        return int(self._run("count"))
