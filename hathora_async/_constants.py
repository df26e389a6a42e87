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
# An idle pooled connection is dropped after this many seconds, below the idle
# timeouts of common servers and load balancers (Node's 5 s above all): a
# request sent on a connection the server is closing at that moment is cut off
# after leaving, and a create's outcome is then unknown. Reconnecting costs less.
DEFAULT_KEEPALIVE_TIMEOUT = 4.0

# Retry policy defaults.
DEFAULT_RETRY_ATTEMPTS = 4
DEFAULT_RETRY_INITIAL_DELAY = 0.2
DEFAULT_RETRY_MULTIPLIER = 2.0
DEFAULT_RETRY_MAX_DELAY = 5.0
DEFAULT_RETRY_AFTER_CAP = 20.0

# Response bodies larger than this once decompressed (any status) are refused
# rather than buffered without bound; HathoraClient(max_response_bytes=) changes it.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# How much of a response body an exception keeps.
MAX_ERROR_BODY_BYTES = 64 * 1024
# The server's message as str(error) shows it, and a decoding failure's description.
MAX_ERROR_MESSAGE_CHARS = 500
MAX_DECODE_DESCRIPTION_CHARS = 1200
# A decoding failure explains at most this many problems (each line cut to a length).
MAX_EXPLAINED_PROBLEMS = 3
MAX_EXPLAINED_LINE_CHARS = 200
# A process id read from an undecodable create answer: at most this long.
MAX_PROCESS_ID_CHARS = 200

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
# Hathora's reads are eventually consistent: for this long after a create
# answered (on the client's monotonic clock), a 404 for the process or room it
# made means "not visible yet", not "gone". Waits keep polling through it, the
# warm pool keeps the process and looks for strays of a lost create that long.
READ_AFTER_CREATE_GRACE = 15.0
# How many recently created ids a client remembers for that rule, at most.
MAX_RECENT_CREATES = 100_000
# Between two tries of something not visible yet (a warm pool's stop on exit).
LAG_RETRY_INTERVAL = 0.5

# Finding the process a create whose answer was lost may have made ("strays").
# The create's send is placed on the server's clock with the listing's Date
# header and the client's monotonic clock, so client/server skew does not
# matter; this allows for clock spread between Hathora's own hosts.
STRAY_SERVER_CLOCK_MARGIN = 1.0
# Without a Date header the client's wall clock is the fallback, with this
# allowance for skew between client and server.
STRAY_CLOCK_SKEW = 30.0
# GetLatestProcesses answers at most this many processes.
LATEST_PROCESSES_LIMIT = 10
# Places in a listing left for other clients' processes made in a region
# after a lost create and not yet seen by a look (those seen count as the
# run's own creates do, see _strays.Sight).
STRAY_HEADROOM = 3
# preallocate and WarmPool: at most this many of their creates in a region may
# make processes newer than one whose outcome is not known yet (fewer the more
# others' processes a look showed newer than it), so a listing (10 processes)
# still shows that one until its search has found it.
STRAY_SIGHT = LATEST_PROCESSES_LIMIT - 1 - STRAY_HEADROOM
# Coalesced polling (issue 12, see _watch.py): when at least this many waits
# watch a region, one GetLatestProcesses of these statuses (the states a wait
# is after; others are read on their own) answers their polls.
WATCH_MIN_SHARED = 2
WATCH_LIST_STATUSES = ("starting", "running")

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

# Send budget (issue 12; see _budget.py for how they work together).
# Before the server has said anything about its limit: this many requests may
# go at once, each success lets RATE_START_GAIN more go, and after
# RATE_OPEN_AFTER successes without a confirmed limit the budget stops counting.
RATE_INITIAL_WINDOW = 4
RATE_START_GAIN = 2
RATE_OPEN_AFTER = 64
RATE_START_RECHECK = 0.005
# Never pace slower than this (requests per second).
RATE_MIN = 0.5
# A 429 is read as a limit (not a stray) once a lane has had at least
# RATE_CONFIRM_REFUSALS refusals within the last RATE_CONFIRM_WINDOW seconds
# (counted in two half-window buckets) and they are at least RATE_CONFIRM_SHARE
# of its answers then: a gateway's overload refuses 50-90 %, strays stay at
# their own base rate. While probing above a limit already confirmed, the
# share needed is RATE_PROBE_SHARE.
RATE_CONFIRM_REFUSALS = 2
RATE_CONFIRM_WINDOW = 1.0
RATE_CONFIRM_SHARE = 0.2
RATE_PROBE_SHARE = 0.05
# Lanes (writes: POST; reads: GET). A limit confirmed on one lane is taken as
# the app's (a pace and pause shared by both lanes) unless the other lane shows
# it is unaffected: at least RATE_LANE_EVIDENCE successes within the confirm
# window, no refusal within RATE_LANE_MEMORY seconds, and no app-wide cut then.
RATE_LANE_EVIDENCE = 3
RATE_LANE_MEMORY = 10.0
# When both lanes wait for the shared pace, reads get at least one slot in
# RATE_READ_EVERY (writes the rest): polls progress, creates are not starved.
RATE_READ_EVERY = 4
# After a first limit that says nothing about the server's rate: start from the
# burst the server allowed, per second, and double every RATE_RAMP_DOUBLING s.
RATE_RAMP_DOUBLING = 0.25
RATE_RAMP_MIN_BASE = 5.0
# The server's rate is estimated from successes over windows at least this long.
RATE_ESTIMATE_MIN_WINDOW = 0.25
# The successes of the last RATE_MEASURE_WINDOW seconds are a floor for that
# estimate, and, at a limit met again where the burst model explains nothing (a
# window limiter, a bucket larger than its refill), the estimate itself.
RATE_MEASURE_WINDOW = 1.0
# Successes kept per lane (their times) for that estimate.
RATE_HISTORY = 4096
# Successes this close to the first refusal of a first limit count as the burst
# the server allows.
RATE_STORM_WINDOW = 0.25
# Pace this far below an estimated server rate; without an estimate, cut to BETA.
RATE_MARGIN = 0.05
RATE_BETA = 0.7
# CUBIC growth, relative to the rate at the last cut: w(t) = w_max (1 + C (t - K)^3)
# (flat for K = 1.4 s after a 5 % cut, 10 % above w_max 1.7 s later). Once the pace
# is RATE_RAMP_ABOVE times w_max without a limit, the limit has moved: the pace
# ramps (doubling every RATE_RAMP_DOUBLING s) until the next limit says where.
RATE_CUBIC_SCALE = 0.02
RATE_RAMP_ABOVE = 1.1
# Requests that may go at once when pacing: this many seconds' worth, at most the
# burst the server was seen to allow.
RATE_BURST_SECONDS = 0.1
# Growth is capped at this multiple of the sending rate (answers per second, as
# botocore measures it): an idle client must not grow a rate it would then burst at.
RATE_MAX_OVER_USED = 2.0
# A cut to below this fraction of the previous rate is logged at INFO.
RATE_LOG_DROP = 0.5
# Each cut is watched: a gateway's refusals depend on the send rate (paced below
# its limit they stop or fall), stray 429s keep their share whatever the pace.
# Once RATE_STRAY_SAMPLE answers to requests sent after a cut are in, if their
# refusal share is at least RATE_STRAY_FLOOR, at most RATE_STRAY_MAX, at least
# RATE_STRAY_SAME of the share that confirmed the cut, already present in the
# first half of them, and the successes per second fell to RATE_STRAY_TRACK of
# those before the cut or less (strays follow the pace; a saturated limit's
# successes stay at its rate), the refusals were strays: the cut is undone (its
# pause ended) and the lane learns their share, which confirmation must then
# exceed by RATE_STRAY_MARGIN, with at least RATE_STRAY_REFUSALS refusals.
RATE_STRAY_SAMPLE = 40
RATE_STRAY_FLOOR = 0.04
RATE_STRAY_MAX = 0.3
RATE_STRAY_SAME = 0.6
RATE_STRAY_TRACK = 0.9
RATE_STRAY_MARGIN = 0.2
RATE_STRAY_REFUSALS = 8

ENV_TOKEN = "HATHORA_TOKEN"
ENV_APP_ID = "HATHORA_APP_ID"
ENV_BASE_URL = "HATHORA_BASE_URL"

LOGGER_NAME = "hathora_async"
# The attribute of a log record listing the ids a call left running (a tuple of
# str), so a handler can tell those warnings apart without parsing their text.
LOG_LEFT_RUNNING = "hathora_left_running"
# Likewise the ids of processes a lost create may have made that cannot be told
# from other clients' (preallocate's ``ambiguous``, a warm pool's unclaimed).
LOG_AMBIGUOUS = "hathora_ambiguous"

# Warm pool (issue 10): a create intent whose process no listing could look for
# (listings kept failing) is given up this long after it was written.
DEFAULT_INTENT_MAX_AGE = 600.0

# Replicated warm pool (hathora_async.redis).
POOL_KEY_PREFIX = "hathora-async:pool:"
DEFAULT_LEASE_TTL = 5.0
# The leader stops acting this share of the lease before the lease could expire
# in Redis: room for clock-rate drift and the time a renewal takes to land.
LEASE_SAFETY_FRACTION = 0.2
# A replica's membership lapses after this many lease periods without a heartbeat.
MEMBER_TTL_LEASES = 3
# A leaving replica counts as remaining only replicas that heartbeated within
# this many lease periods (live ones heartbeat every third of a lease).
LEAVE_FRESH_LEASES = 1
# When some did, it asks again this many leases later: a live replica has
# heartbeated since, a crashed one no longer counts.
LEAVE_RECHECK_LEASES = 1.25
# After the store lost its data, the leader creates and stops nothing for this
# many leases (or poll intervals, if longer) after the last replica put back
# what it knew: time for every replica to notice and restore.
RECOVERY_HOLD_LEASES = 2
# Records, targets, snapshot and fence outlive the pool's last write by this much
# (then the pool is long dead and Hathora's idle reaper has stopped its processes).
DEFAULT_POOL_STATE_TTL = 24 * 3600.0

# Command line (hathora_async.cli).
# The demo against a non-loopback API (real, billed processes) runs at most this
# many processes per region unless --yes confirms more.
DEMO_REAL_API_MAX_PER_REGION = 1
# `preallocate` against a non-loopback API creates at most this many processes in
# total unless --yes confirms more (they are billed).
PREALLOCATE_REAL_API_MAX_TOTAL = 100
# A live display redraws at most this often (seconds); the pool's is checked this often.
LIVE_REDRAW_INTERVAL = 0.05
POOL_DISPLAY_INTERVAL = 0.25
# Below this many columns or rows a live display cannot fit: plain lines instead.
LIVE_MIN_COLUMNS = 30
LIVE_MIN_ROWS = 4
# Room configs longer than this are cut in tables (--json shows them whole).
TABLE_MAX_CELL = 40

# ThreadedFake (and so the pytest plugin): the longest a start, a stop or an admin
# call waits for the fake's own thread; far above what loopback needs, well below CI's.
FAKE_THREAD_TIMEOUT = 30.0
# The fake's command line: its default port, and the largest --clock-offset either
# way (seconds, ten years: far beyond any real skew, well within datetime's range).
FAKE_DEFAULT_PORT = 8080
FAKE_MAX_CLOCK_OFFSET = 10 * 365 * 86400.0
