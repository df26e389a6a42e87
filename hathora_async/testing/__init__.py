"""A local fake Hathora Cloud for tests, CI and demos, with fault injection.

``async with FakeHathora() as fake:`` then point ``HathoraClient`` at
``fake.url`` with ``fake.token`` and ``fake.app_id``. Also runnable as
``python -m hathora_async.testing``. ``ThreadedFake`` runs one on its own loop in
a background thread, for sync code and any event loop (the pytest plugin's
``hathora_fake`` fixture is one).
"""

from ._clock import ManualClock
from ._fake import FakeHathora
from ._faults import Fault, FaultPlan
from ._state import REGIONS
from ._threaded import ThreadedFake, ThreadedFaults

__all__ = [
    "FakeHathora",
    "Fault",
    "FaultPlan",
    "ManualClock",
    "REGIONS",
    "ThreadedFake",
    "ThreadedFaults",
]
