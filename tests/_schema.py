"""The project's own JSON Schemas (tests/schemas/) and strict validators over them.

``hathora.schema.json`` holds the models hathora-async decodes (ProcessV2, Room, ...)
as strict JSON Schema 2020-12: every object refuses keys it does not list, nullable
fields are ``anyOf [..., null]``, Region has Johannesburg and Dubai. ``operations.json``
maps each operation the client calls to its documented answers' schemas. Both are
written from Hathora's OpenAPI document, which ``test_schema_drift.py`` compares them
with when it is present; the suite itself needs nothing outside the repository.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = [
    "MODELS_URI",
    "NEWER_REGIONS",
    "SCHEMA_DIR",
    "Schemas",
    "schemas",
    "validate_response",
    "validate_schema",
]

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MODELS_FILE = "hathora.schema.json"
OPERATIONS_FILE = "operations.json"
# Never fetched: an identifier for the registry (the .invalid TLD cannot resolve).
BASE_URI = "https://schemas.hathora-async.invalid/"
MODELS_URI = BASE_URI + MODELS_FILE
# Regions the newer API has and the spec's enum predates.
NEWER_REGIONS = ("Johannesburg", "Dubai")

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    return not isinstance(value, str) or RFC3339.fullmatch(value) is not None


@FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def load(name: str) -> dict[str, Any]:
    with (SCHEMA_DIR / name).open() as f:
        document: dict[str, Any] = json.load(f)
    return document


class Schemas:
    """Validators for the models (by name) and the operations' answers (by operationId)."""

    def __init__(self, models: dict[str, Any], operations: dict[str, Any]) -> None:
        self.models = models
        self.operations = operations
        resource = DRAFT202012.create_resource(models)
        self.registry: Registry[Any] = Registry().with_resource(MODELS_URI, resource)

    @property
    def defs(self) -> dict[str, Any]:
        """Each model's schema by name (refs inside are ``#/$defs/<name>``)."""
        defs: dict[str, Any] = self.models["$defs"]
        return defs

    def _validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # Refs in operations.json are relative to the models file: give them its base.
        return jsonschema.Draft202012Validator(
            {"$id": BASE_URI + "operation", **schema},
            registry=self.registry,
            format_checker=FORMATS,
        )

    def component(self, name: str) -> jsonschema.Draft202012Validator:
        if name not in self.defs:
            raise KeyError(f"no model {name!r} in {MODELS_FILE}")
        return self._validator({"$ref": f"{MODELS_FILE}#/$defs/{name}"})

    def response(self, operation: str, status: int) -> jsonschema.Draft202012Validator | None:
        """The validator of ``operation``'s ``status`` answer; None if it has no body."""
        responses = self.operations[operation]["responses"]
        if str(status) not in responses:
            raise KeyError(f"{operation} documents no {status} answer")
        schema = responses[str(status)]
        return None if schema is None else self._validator(schema)

    def check(self, operation: str, status: int, body: bytes, data: Any) -> None:
        """Assert that raw answer ``body`` (parsed: ``data``) is what ``operation`` documents."""
        validator = self.response(operation, status)
        if validator is None:
            assert body == b""
            return
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], f"{operation} {status} answer breaks the schema: {errors}"


@functools.cache
def schemas() -> Schemas:
    """The committed schemas, loaded once."""
    return Schemas(load(MODELS_FILE), load(OPERATIONS_FILE)["operations"])


def validate_response(operation_id: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` is exactly what is documented."""
    validator = schemas().response(operation_id, status)
    assert validator is not None, f"{operation_id} {status} has no body"
    validator.validate(body)


def validate_schema(name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` strictly matches model ``name``."""
    schemas().component(name).validate(instance)
