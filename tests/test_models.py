"""Decoding answers into models: open enums, extra fields, bad bodies, timestamps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hostile import APP_ID, PROCESS_V2_KEYS, Canned, HostileServer, hostile_client, process_json

from hathora_async import (
    ExposedPort,
    HathoraClient,
    ProcessStatus,
    ProcessV2,
    Region,
    ResponseDecodeError,
    RetryPolicy,
    TransportType,
)
from hathora_async._convert import _parse_datetime_slow, camel, parse_datetime
from hathora_async.testing import FakeHathora, Fault

UTC = timezone.utc


async def fetch_info(server: HostileServer, body: bytes, status: int = 200) -> ProcessV2:
    """Have ``server`` answer GetProcessInfo with ``body`` and decode it."""
    server.answer(Canned(status, body))
    async with hostile_client(server) as client:
        return await client.processes.get_process_info("p-1")


async def info_error(server: HostileServer, body: bytes) -> ResponseDecodeError:
    with pytest.raises(ResponseDecodeError) as caught:
        await fetch_info(server, body)
    return caught.value


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


async def test_a_full_process_decodes_field_by_field(hostile: HostileServer) -> None:
    process = await fetch_info(hostile, dumps(process_json()))
    assert process == ProcessV2(
        process_id="cbfcddd2-0006-43ae-996c-995fff7bed2e",
        app_id="app-hostile",
        deployment_id=7,
        region=Region.SEATTLE,
        status=ProcessStatus.RUNNING,
        rooms_allocated=1,
        rooms_per_process=4,
        created_at=datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC),
        started_at=datetime(2024, 5, 1, 10, 0, 5, 250000, tzinfo=UTC),
        stopping_at=None,
        terminated_at=None,
        exposed_port=ExposedPort(TransportType.UDP, 34567, "1.proxy.hathora.dev", "default"),
        additional_exposed_ports=(
            ExposedPort(TransportType.TCP, 7001, "1.proxy.hathora.dev", "debug"),
        ),
    )
    assert isinstance(process.additional_exposed_ports, tuple)


def test_models_are_frozen_and_slotted() -> None:
    for cls in (ProcessV2, ExposedPort):
        assert "__slots__" in cls.__dict__
        assert attrs.fields(cls)  # an attrs class
    port = ExposedPort(TransportType.TCP, 1, "h", "n")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        port.port = 2  # type: ignore[misc]


async def test_unknown_enum_values_decode_and_keep_their_raw_string(
    hostile: HostileServer,
) -> None:
    quic = {"transportType": "quic", "port": 1, "host": "h", "name": "n"}
    process = await fetch_info(
        hostile,
        dumps(
            process_json(
                region="Atlantis",
                status="hibernating",
                exposedPort=quic,
                additionalExposedPorts=[quic, {**quic, "transportType": "tls"}],
            )
        ),
    )
    assert process.region.value == "Atlantis" and process.region == "Atlantis"
    assert isinstance(process.region, Region) and not process.region.is_known
    assert process.status.value == "hibernating" and not process.status.is_known
    assert process.exposed_port is not None
    assert process.exposed_port.transport_type == "quic"
    assert not process.exposed_port.transport_type.is_known
    assert [p.transport_type.value for p in process.additional_exposed_ports] == ["quic", "tls"]
    assert process.additional_exposed_ports[1].transport_type is TransportType.TLS


async def test_extra_fields_are_ignored(hostile: HostileServer) -> None:
    port = {"transportType": "tcp", "port": 9, "host": "h", "name": "n", "ipv6": "::1"}
    with_extras = process_json(
        exposedPort=port, additionalExposedPorts=[port], newField={"nested": [1]}, cost=1.5
    )
    plain = process_json(
        exposedPort={k: v for k, v in port.items() if k != "ipv6"},
        additionalExposedPorts=[{k: v for k, v in port.items() if k != "ipv6"}],
    )
    assert await fetch_info(hostile, dumps(with_extras)) == await fetch_info(hostile, dumps(plain))


async def test_nullable_fields_accept_null(hostile: HostileServer) -> None:
    process = await fetch_info(
        hostile,
        dumps(
            process_json(
                startedAt=None,
                exposedPort=None,
                additionalExposedPorts=[],
                stoppingAt="2024-05-01T11:00:00Z",
                terminatedAt="2024-05-01T11:00:30Z",
            )
        ),
    )
    assert process.started_at is None and process.exposed_port is None
    assert process.additional_exposed_ports == ()
    assert process.terminated_at == datetime(2024, 5, 1, 11, 0, 30, tzinfo=UTC)


# -- bodies that cannot be decoded --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b"not json at all", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"<html>oops</html>", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
async def test_non_json_body(hostile: HostileServer, body: bytes, description: str) -> None:
    error = await info_error(hostile, body)
    assert (error.status, error.description, error.body) == (200, description, body)
    assert str(error).startswith(f"cannot decode HTTP 200 response: {description} (GET ")


async def test_json_cut_short_in_a_complete_response(hostile: HostileServer) -> None:
    # The HTTP message is complete (Content-Length matches); the JSON inside is not.
    full = dumps(process_json())
    body = full[: len(full) // 2]
    error = await info_error(hostile, body)
    assert error.status == 200
    assert error.description.startswith("body is not valid JSON: ")
    assert error.body == body


async def test_malformed_body_from_the_fake_on_create(fake: FakeHathora) -> None:
    fake.faults.add("create_process", Fault(body="malformed"))
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.create_process(Region.SEATTLE)
    assert caught.value.status == 201
    assert caught.value.body == b'{"processId": <this is not json'
    assert caught.value.description.startswith("body is not valid JSON")
    # The fake did create the process; the client must say it may exist.
    assert fake.processes_created == 1
    assert caught.value.outcome_unknown is True


@pytest.mark.parametrize("key", PROCESS_V2_KEYS)
async def test_missing_required_field(hostile: HostileServer, key: str) -> None:
    data = process_json()
    del data[key]
    body = dumps(data)
    error = await info_error(hostile, body)
    assert error.status == 200
    assert error.description == f"required field missing @ $.{key}"
    assert error.body == body


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"roomsAllocated": "1"}, "expected an integer, got str @ $.roomsAllocated"),
        ({"roomsPerProcess": True}, "expected an integer, got bool @ $.roomsPerProcess"),
        ({"deploymentId": 1.5}, "expected an integer, got float @ $.deploymentId"),
        ({"additionalExposedPorts": {}}, "expected an array, got dict @ $.additionalExposedPorts"),
        (
            {"additionalExposedPorts": "tcp"},
            "expected an array, got str @ $.additionalExposedPorts",
        ),
        ({"processId": None}, "expected a string, got NoneType @ $.processId"),
        ({"appId": 12}, "expected a string, got int @ $.appId"),
        (
            {"createdAt": None},
            "expected an RFC 3339 timestamp string, got NoneType @ $.createdAt",
        ),
        ({"createdAt": "yesterday"}, "invalid timestamp 'yesterday' @ $.createdAt"),
        ({"status": None}, "expected a string for ProcessStatus, got NoneType @ $.status"),
        ({"region": 3}, "expected a string for Region, got int @ $.region"),
        (
            {"exposedPort": "1.2.3.4:80"},
            "expected an object for ExposedPort, got str @ $.exposedPort",
        ),
        (
            {"exposedPort": {"transportType": "udp", "port": 1, "name": "x"}},
            "required field missing @ $.exposedPort.host",
        ),
        (
            {
                "additionalExposedPorts": [
                    {"transportType": "tcp", "port": 1, "host": "h", "name": "a"},
                    {"transportType": "tcp", "port": "2", "host": "h", "name": "b"},
                ]
            },
            "expected an integer, got str @ $.additionalExposedPorts[1].port",
        ),
        (
            {"roomsAllocated": None, "appId": None},
            "expected a string, got NoneType @ $.appId; "
            "expected an integer, got NoneType @ $.roomsAllocated",
        ),
    ],
)
async def test_wrong_types(
    hostile: HostileServer, overrides: dict[str, Any], description: str
) -> None:
    body = dumps(process_json(**overrides))
    error = await info_error(hostile, body)
    assert (error.status, error.description, error.body) == (200, description, body)


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b"[]", "expected an object for ProcessV2, got list @ $"),
        (b"null", "expected an object for ProcessV2, got NoneType @ $"),
        (b'"running"', "expected an object for ProcessV2, got str @ $"),
    ],
)
async def test_wrong_top_level_type_for_one_process(
    hostile: HostileServer, body: bytes, description: str
) -> None:
    error = await info_error(hostile, body)
    assert error.description == description


@pytest.mark.parametrize(
    ("data", "description"),
    [
        ({"processes": []}, "expected an array, got dict @ $"),
        (None, "expected an array, got NoneType @ $"),
        ([process_json(), 7], "expected an object for ProcessV2, got int @ $[1]"),
        (
            [process_json(), process_json(status=1), process_json()],
            "expected a string for ProcessStatus, got int @ $[1].status",
        ),
    ],
)
async def test_wrong_types_in_the_latest_list(
    hostile: HostileServer, data: Any, description: str
) -> None:
    body = dumps(data)
    hostile.answer(Canned(200, body))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.get_latest_processes()
    assert (caught.value.status, caught.value.description) == (200, description)
    assert caught.value.body == body


async def test_decode_error_of_a_non_idempotent_call_is_outcome_unknown(
    hostile: HostileServer,
) -> None:
    hostile.answer(Canned(201, b"{}"))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.create_process(Region.SEATTLE)
    assert caught.value.status == 201
    assert caught.value.outcome_unknown is True


async def test_any_success_status_is_decoded_as_success(
    hostile: HostileServer,
) -> None:
    # GetProcessInfo documents 200; a 201 with a valid body is a success all the same.
    hostile.answer(Canned(201, dumps(process_json())))
    async with hostile_client(hostile) as client:
        response = await client.processes.get_process_info_with_http_info("p-1")
    assert response.status_code == 201
    assert response.data.app_id == APP_ID


# -- timestamps ---------------------------------------------------------------------------

TIMESTAMPS = [
    ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T00:00:00z", datetime(2024, 1, 1, tzinfo=UTC)),
    ("2024-01-01T00:00:00.123Z", datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)),
    ("2024-01-01T00:00:00.123456Z", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("2024-01-01T00:00:00.123456789Z", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("2024-01-01T00:00:00.5Z", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    (
        "2024-01-01T02:00:00+02:00",
        datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    ),
    (
        "2024-01-01T02:00:00.250+02:00",
        datetime(2024, 1, 1, 2, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
    ),
    (
        "2023-12-31T18:30:00.123456789-05:30",
        datetime(2023, 12, 31, 18, 30, 0, 123456, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
    ),
    ("2024-01-01T00:00:00+00:00", datetime(2024, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "expected"), TIMESTAMPS)
async def test_timestamps_decode_timezone_aware(
    hostile: HostileServer, text: str, expected: datetime
) -> None:
    process = await fetch_info(hostile, dumps(process_json(createdAt=text, stoppingAt=text)))
    for value in (process.created_at, process.stopping_at):
        assert value == expected
        assert value is not None and value.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(("text", "expected"), TIMESTAMPS)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected and parsed.tzinfo is not None
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t.replace("Z", "+00:00").replace("z", "+00:00"), e) for t, e in TIMESTAMPS if "." in t],
)
def test_parse_datetime_fallback_for_python_3_10(text: str, expected: datetime) -> None:
    # Python 3.10's fromisoformat takes only 3 or 6 fractional digits; the fallback
    # must give the same answer for every form with a fraction.
    assert _parse_datetime_slow(text) == expected


def test_naive_timestamp_is_taken_as_utc() -> None:
    assert parse_datetime("2024-01-01T00:00:00") == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00.x"])
def test_parse_datetime_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


# -- enums and names ----------------------------------------------------------------------


def test_enums_hold_every_documented_value() -> None:
    assert [r.value for r in Region] == [
        "Seattle",
        "Los_Angeles",
        "Washington_DC",
        "Chicago",
        "London",
        "Frankfurt",
        "Mumbai",
        "Singapore",
        "Tokyo",
        "Sydney",
        "Sao_Paulo",
        "Dallas",
        "Johannesburg",
        "Dubai",
    ]
    assert [s.value for s in ProcessStatus] == [
        "starting",
        "running",
        "draining",
        "stopping",
        "stopped",
        "failed",
    ]
    assert [t.value for t in TransportType] == ["tcp", "udp", "tls"]
    assert Region("Seattle") is Region.SEATTLE
    assert Region.SEATTLE.is_known


def test_open_enum_pseudo_members() -> None:
    atlantis = Region("Atlantis")
    assert atlantis == Region("Atlantis") == "Atlantis"
    assert atlantis != Region.SEATTLE
    assert not atlantis.is_known
    assert str(atlantis) == "Atlantis"
    assert repr(atlantis) == "Region('Atlantis')"
    assert hash(atlantis) == hash("Atlantis")
    assert atlantis not in list(Region)
    with pytest.raises(ValueError):
        Region("")


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("process_id", "processId"),
        ("rooms_per_process", "roomsPerProcess"),
        ("additional_exposed_ports", "additionalExposedPorts"),
        ("port", "port"),
    ],
)
def test_camel(name: str, wire: str) -> None:
    assert camel(name) == wire


def test_a_value_spelled_like_a_members_name_is_not_known() -> None:
    # "SEATTLE" is a member's name, not its value: it is sent as is, so it is not known.
    assert not Region("SEATTLE").is_known and Region("SEATTLE").value == "SEATTLE"
    assert Region("Seattle").is_known and Region.SEATTLE.is_known
