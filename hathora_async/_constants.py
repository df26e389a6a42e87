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

ENV_TOKEN = "HATHORA_TOKEN"
ENV_APP_ID = "HATHORA_APP_ID"
ENV_BASE_URL = "HATHORA_BASE_URL"

LOGGER_NAME = "hathora_async"
