"""Every default and limit of the client, in one place."""

from __future__ import annotations

from ._version import __version__

DEFAULT_BASE_URL = "https://api.hathora.dev"
USER_AGENT = f"hathora-async/{__version__}"

# Sized for a game server: a Hathora call should never stall a match for minutes.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 15.0
DEFAULT_TOTAL_TIMEOUT = 30.0

# Connection pool. All calls go to one host, so the per-host limit is the real one.
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_KEEPALIVE_TIMEOUT = 30.0

# Retry policy defaults.
DEFAULT_RETRY_ATTEMPTS = 4
DEFAULT_RETRY_INITIAL_DELAY = 0.2
DEFAULT_RETRY_MULTIPLIER = 2.0
DEFAULT_RETRY_MAX_DELAY = 5.0
DEFAULT_RETRY_AFTER_CAP = 20.0

# Responses larger than this are refused rather than buffered without bound.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# How much of a response body an exception keeps.
MAX_ERROR_BODY_BYTES = 64 * 1024

# Waiting for a process to run: a little above Hathora's 100 s port-binding deadline.
DEFAULT_WAIT_TIMEOUT = 105.0
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_MAX_POLL_INTERVAL = 5.0
POLL_BACKOFF_MULTIPLIER = 1.5
# A call cut short to fit a wait's (or a create's) deadline still gets this much:
# shorter could not complete even on loopback.
MIN_BOUNDED_CALL_TIMEOUT = 0.05

# Pre-allocation: in-flight HTTP requests of one preallocate() call.
DEFAULT_PREALLOC_CONCURRENCY = 32
# How far before a preallocate() call a process may be dated and still count as
# a probable stray of it (allows for clock skew between client and server).
STRAY_CLOCK_SKEW = 30.0

# Warm pool.
DEFAULT_POOL_POLL_INTERVAL = 5.0
DEFAULT_POOL_CONCURRENCY = 8
DEFAULT_POOL_MAX_BACKOFF = 60.0

# Rooms. Limits are the spec's RoomId and RoomConfig schemas.
ROOM_ID_MAX_LENGTH = 100
ROOM_CONFIG_MAX_LENGTH = 10_000
# Client-generated room ids: 16 of [a-z0-9] is about 82 random bits, so two never collide.
GENERATED_ROOM_ID_LENGTH = 16
# A room on a running process is active at once; a cold start waits for a process
# to boot, bounded like a process wait by Hathora's 100 s port-binding deadline.
DEFAULT_ROOM_POLL_INTERVAL = 0.5

ENV_TOKEN = "HATHORA_TOKEN"
ENV_APP_ID = "HATHORA_APP_ID"
ENV_BASE_URL = "HATHORA_BASE_URL"

LOGGER_NAME = "hathora_async"

# ThreadedFake (and so the pytest plugin): the longest a start, a stop or an admin
# call waits for the fake's own thread; far above what loopback needs, well below CI's.
FAKE_THREAD_TIMEOUT = 30.0
