"""The fake's ProcessesV2 wire format checked strictly against the committed schemas.

The schemas are the project's own (tests/schemas/, loaded by ``tests/_schema.py``,
shared with the RoomsV2 wire tests): strict JSON Schema whose objects refuse keys
they do not list, so a key the models do not know (drift in the fake) fails here
instead of passing silently. ``test_schema_drift.py`` keeps them equal to Hathora's
OpenAPI document.
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import jsonschema
import pytest
from _schema import Schemas, schemas

from hathora_async import ExposedPort, ProcessV2
from hathora_async._convert import camel
from hathora_async.errors import error_class_for
from hathora_async.testing import REGIONS, FakeHathora, Fault, ManualClock

PROCESS_PATHS = {
    "create": "CreateProcess",
    "latest": "GetLatestProcesses",
    "info": "GetProcessInfo",
    "stop": "StopProcess",
}


class SpecValidator(Schemas):
    """The shared strict validator, naming ProcessesV2 answers as PROCESS_PATHS does."""

    def response(self, operation: str, status: int) -> jsonschema.Draft202012Validator | None:
        return super().response(PROCESS_PATHS.get(operation, operation), status)

    def route(self, operation: str) -> tuple[str, str]:
        """The method and path template of ``operation``."""
        shape = self.operations[PROCESS_PATHS[operation]]
        return shape["method"], shape["path"]


def _validator() -> SpecValidator:
    return SpecValidator(schemas().models, schemas().operations)


@pytest.fixture
def validator() -> SpecValidator:
    return _validator()


class Wire:
    """Raw HTTP to the fake: the exact bytes it answers, not the client's models."""

    def __init__(self, fake: FakeHathora, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def call(
        self, operation: str, token: str | None = None, **params: str
    ) -> tuple[int, bytes, Any]:
        method, template = _validator().route(operation)
        path = template.format(appId=params.pop("appId", self.fake.app_id), **params)
        headers = {"Authorization": f"Bearer {token or self.fake.token}"}
        async with self.session.request(method, self.fake.url + path, headers=headers) as r:
            body = await r.read()
            return r.status, body, json.loads(body) if body else None


@pytest.fixture
async def wire(fake: FakeHathora) -> AsyncIterator[Wire]:
    async with aiohttp.ClientSession() as session:
        yield Wire(fake, session)


async def call_checked(
    wire: Wire, validator: SpecValidator, operation: str, expected: int, **params: str
) -> Any:
    status, body, data = await wire.call(operation, **params)
    assert status == expected, body
    validator.check(operation, status, body, data)
    return data


# -- the converter itself must be able to fail --------------------------------------------


def _valid_process() -> dict[str, Any]:
    return {
        "status": "running",
        "roomsAllocated": 0,
        "terminatedAt": None,
        "stoppingAt": None,
        "startedAt": "2024-01-01T00:00:01.000Z",
        "createdAt": "2024-01-01T00:00:00Z",
        "roomsPerProcess": 4,
        "additionalExposedPorts": [],
        "exposedPort": {"transportType": "udp", "port": 1, "host": "h", "name": "default"},
        "region": "Dubai",
        "processId": "p",
        "deploymentId": 1,
        "appId": "a",
    }


@pytest.mark.parametrize(
    ("change", "fails"),
    [
        ({}, False),
        ({"exposedPort": None}, False),
        ({"region": "Johannesburg"}, False),
        ({"surprise": 1}, True),
        (
            {"exposedPort": {"transportType": "udp", "port": 1, "host": "h", "name": "d", "x": 1}},
            True,
        ),
        ({"exposedPort": {"transportType": "quic", "port": 1, "host": "h", "name": "d"}}, True),
        ({"processId": None}, True),
        ({"createdAt": None}, True),
        ({"createdAt": "2024-01-01 00:00:00"}, True),
        ({"region": "Atlantis"}, True),
        ({"status": "hibernating"}, True),
        ({"roomsPerProcess": 0}, True),
        ({"roomsAllocated": 2**31}, True),
        ({"additionalExposedPorts": [{}]}, True),
    ],
)
def test_strict_schema_catches_drift(
    validator: SpecValidator, change: dict[str, Any], fails: bool
) -> None:
    instance = {**_valid_process(), **change}
    errors = list(validator.component("ProcessV2").iter_errors(instance))
    assert bool(errors) is fails, errors


def test_missing_key_fails(validator: SpecValidator) -> None:
    instance = _valid_process()
    del instance["stoppingAt"]
    assert not validator.component("ProcessV2").is_valid(instance)


def test_fake_regions_are_the_schema_regions(validator: SpecValidator) -> None:
    assert list(REGIONS) == validator.defs["Region"]["enum"]


# -- the models follow the schemas field by field --------------------------------------------


@pytest.mark.parametrize(
    ("model", "schema_name"), [(ProcessV2, "ProcessV2"), (ExposedPort, "ExposedPort")]
)
def test_model_fields_and_nullability_match_the_schemas(
    validator: SpecValidator, model: type[Any], schema_name: str
) -> None:
    schema = validator.defs[schema_name]
    hints = typing.get_type_hints(model)
    fields = {camel(f.name): f.name for f in attrs.fields(model)}
    assert set(fields) == set(schema["properties"]) == set(schema["required"])
    for wire_name, prop in schema["properties"].items():
        optional = type(None) in typing.get_args(hints[fields[wire_name]])
        assert optional is nullable(prop), wire_name


def nullable(prop: dict[str, Any]) -> bool:
    """True when a property schema admits null (``anyOf [..., {"type": "null"}]``)."""
    return {"type": "null"} in prop.get("anyOf", [])


def test_documented_error_statuses_have_their_own_classes(validator: SpecValidator) -> None:
    seen = set()
    for operation in PROCESS_PATHS.values():
        for status in validator.operations[operation]["responses"]:
            if int(status) >= 400:
                seen.add(int(status))
                assert error_class_for(int(status)).__name__ != "ApiError", status
    assert seen == {401, 402, 404, 500}


# -- the fake's answers -------------------------------------------------------------------


async def test_process_lifecycle_answers_validate(validator: SpecValidator) -> None:
    clock = ManualClock()
    async with (
        FakeHathora(boot_delay=5.0, stop_delay=3.0, clock=clock, seed=5) as fake,
        aiohttp.ClientSession() as session,
    ):
        wire = Wire(fake, session)
        created = await call_checked(wire, validator, "create", 201, region="Johannesburg")
        assert created["status"] == "starting"
        pid = created["processId"]
        await call_checked(wire, validator, "info", 200, processId=pid)
        clock.advance(5.0)
        running = await call_checked(wire, validator, "info", 200, processId=pid)
        assert running["status"] == "running" and running["exposedPort"] is not None
        fake.set_rooms_allocated(pid, 2)
        busy = await call_checked(wire, validator, "info", 200, processId=pid)
        assert busy["roomsAllocated"] == 2
        await call_checked(wire, validator, "stop", 204, processId=pid)
        stopping = await call_checked(wire, validator, "info", 200, processId=pid)
        assert stopping["status"] == "stopping" and stopping["stoppingAt"] is not None
        clock.advance(3.0)
        stopped = await call_checked(wire, validator, "info", 200, processId=pid)
        assert stopped["status"] == "stopped" and stopped["terminatedAt"] is not None
        latest = await call_checked(wire, validator, "latest", 200)
        assert [p["processId"] for p in latest] == [pid]


async def test_failed_process_answers_validate(validator: SpecValidator) -> None:
    clock = ManualClock()
    async with (
        FakeHathora(boot_delay=1.0, boot_failure_rate=1.0, clock=clock, seed=5) as fake,
        aiohttp.ClientSession() as session,
    ):
        wire = Wire(fake, session)
        created = await call_checked(wire, validator, "create", 201, region="Seattle")
        clock.advance(1.0)
        failed = await call_checked(wire, validator, "info", 200, processId=created["processId"])
        assert failed["status"] == "failed"


async def test_latest_list_validates_with_every_region_and_transport(
    validator: SpecValidator,
) -> None:
    async with (
        FakeHathora(transport_type="tcp", seed=5) as fake,
        aiohttp.ClientSession() as session,
    ):
        wire = Wire(fake, session)
        for region in REGIONS:
            await call_checked(wire, validator, "create", 201, region=region)
        latest = await call_checked(wire, validator, "latest", 200)
        assert len(latest) == 10
        assert {p["exposedPort"]["transportType"] for p in latest} == {"tcp"}


async def test_empty_latest_list_validates(wire: Wire, validator: SpecValidator) -> None:
    assert await call_checked(wire, validator, "latest", 200) == []


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("create", {"region": "Seattle"}),
        ("latest", {}),
        ("info", {"processId": "nope"}),
        ("stop", {"processId": "nope"}),
    ],
)
async def test_401_answers_validate(
    wire: Wire, validator: SpecValidator, operation: str, params: dict[str, str]
) -> None:
    status, body, data = await wire.call(operation, token="wrong", **params)
    assert status == 401
    validator.check(operation, 401, body, data)
    assert data == {"message": "Invalid or missing bearer token"}


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("create", {"region": "Atlantis"}),
        ("create", {"region": "Seattle", "appId": "app-unknown"}),
        ("latest", {"appId": "app-unknown"}),
        ("info", {"processId": "nope"}),
        ("stop", {"processId": "nope"}),
    ],
)
async def test_404_answers_validate(
    wire: Wire, validator: SpecValidator, operation: str, params: dict[str, str]
) -> None:
    status, body, data = await wire.call(operation, **params)
    assert status == 404
    validator.check(operation, 404, body, data)
    assert isinstance(data["message"], str) and data["message"].endswith("not found")


@pytest.mark.parametrize(
    ("operation", "route", "status"),
    [
        ("create", "create_process", 402),
        ("create", "create_process", 500),
        ("stop", "stop_process", 500),
    ],
)
async def test_injected_error_answers_validate(
    fake: FakeHathora,
    wire: Wire,
    validator: SpecValidator,
    operation: str,
    route: str,
    status: int,
) -> None:
    fake.faults.add(route, Fault(status=status, message="injected"))
    params = {"region": "Seattle"} if operation == "create" else {"processId": "p"}
    got, body, data = await wire.call(operation, **params)
    assert got == status
    validator.check(operation, status, body, data)
    assert data == {"message": "injected"}
