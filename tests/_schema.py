"""Hathora's OpenAPI 3.0 schemas as strict JSON Schema (2020-12), shared by the wire tests.

The spec is OpenAPI 3.0, whose schema dialect is not JSON Schema: ``nullable``
becomes ``anyOf [..., null]``, and ``$ref``s are resolved through a
``referencing`` registry holding the converted components. Strict mode adds
``additionalProperties: false`` to every object schema, so a key the spec does
not know (drift in the fake) fails instead of passing silently. An ``allOf`` of
object schemas (``RoomConnectionData``) is merged into one object first, since
each branch closed on its own would refuse the other's keys.

The spec's ``Region`` enum predates Johannesburg and Dubai, which the newer API
(and so the client and the fake) has: the transformation adds them, and only them.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = [
    "NEWER_REGIONS",
    "SpecValidator",
    "to_json_schema",
    "validate_response",
    "validate_schema",
]

SPEC_URI = "urn:hathora:openapi"
NEWER_REGIONS = ("Johannesburg", "Dubai")
# Keys whose value is one schema, a list of schemas, or a name -> schema mapping.
SCHEMA_KEYS = ("items", "not", "additionalProperties")
SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf")
# OpenAPI-only annotations with no JSON Schema meaning.
DROPPED_KEYS = ("nullable", "example", "xml", "externalDocs", "deprecated", "discriminator")
COMPONENT_REF = "#/components/schemas/"

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _resolve(node: Any, components: dict[str, Any]) -> Any:
    while isinstance(node, dict) and set(node) <= {"$ref", "description"} and "$ref" in node:
        node = components[node["$ref"].removeprefix(COMPONENT_REF)]
    return node


def _merged_object(branches: list[Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """One object schema equal to an ``allOf`` of object schemas, or None if it is not one."""
    resolved = [_resolve(b, components) for b in branches]
    if len(resolved) < 2 or not all(
        isinstance(b, dict) and b.get("type") == "object" and "allOf" not in b for b in resolved
    ):
        return None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for branch in resolved:
        properties.update(branch.get("properties", {}))
        required += [name for name in branch.get("required", []) if name not in required]
    return {"type": "object", "properties": properties, "required": required}


def to_json_schema(
    node: Any, *, strict: bool, base: str = "", components: dict[str, Any] | None = None
) -> Any:
    """One OpenAPI 3.0 schema object as a JSON Schema (2020-12) object.

    ``base`` prefixes ``$ref``s: empty inside the registered components (they
    resolve against the resource), the spec's URI for schemas outside it.
    ``components`` (the spec's raw schemas) lets an ``allOf`` of objects be merged.
    """
    if not isinstance(node, dict):
        return node
    if components is not None and "allOf" in node:
        merged = _merged_object(node["allOf"], components)
        if merged is not None:
            rest = {k: v for k, v in node.items() if k not in ("allOf", "type")}
            node = {**rest, **merged}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {
                name: to_json_schema(s, strict=strict, base=base, components=components)
                for name, s in value.items()
            }
        elif key in SCHEMA_KEYS:
            out[key] = to_json_schema(value, strict=strict, base=base, components=components)
        elif key in SCHEMA_LIST_KEYS:
            out[key] = [
                to_json_schema(s, strict=strict, base=base, components=components) for s in value
            ]
        elif key == "$ref":
            out[key] = base + value
        else:
            out[key] = value
    if strict and out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def converted_components(spec: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    raw = spec["components"]["schemas"]
    schemas = {
        name: to_json_schema(schema, strict=strict, components=raw) for name, schema in raw.items()
    }
    region = schemas["Region"]
    assert not set(NEWER_REGIONS) & set(region["enum"]), "spec now lists the newer regions"
    schemas["Region"] = {**region, "enum": [*region["enum"], *NEWER_REGIONS]}
    return {"components": {"schemas": schemas}}


FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    return not isinstance(value, str) or RFC3339.fullmatch(value) is not None


@FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


class SpecValidator:
    """Validates instances against spec schemas (components or operation responses)."""

    def __init__(self, spec: dict[str, Any], *, strict: bool = True) -> None:
        self.spec = spec
        self.strict = strict
        resource = DRAFT202012.create_resource(converted_components(spec, strict=strict))
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    def _validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # Operation schemas hold '#/components/...' refs: point them into the registry.
        absolute = to_json_schema(
            schema,
            strict=self.strict,
            base=SPEC_URI,
            components=self.spec["components"]["schemas"],
        )
        return jsonschema.Draft202012Validator(
            absolute, registry=self.registry, format_checker=FORMATS
        )

    def component(self, name: str) -> jsonschema.Draft202012Validator:
        return self._validator({"$ref": f"#/components/schemas/{name}"})

    def path_response(
        self, method: str, path: str, status: int
    ) -> jsonschema.Draft202012Validator | None:
        """The validator of the ``status`` answer at ``method path``; None if it has no body."""
        answer = self.spec["paths"][path][method]["responses"][str(status)]
        content = answer.get("content")
        if not content:
            return None
        return self._validator(content["application/json"]["schema"])

    def response(self, operation: str, status: int) -> jsonschema.Draft202012Validator | None:
        """The validator of operation ``operation`` (an operationId)'s ``status`` answer."""
        for path, item in self.spec["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and op.get("operationId") == operation:
                    return self.path_response(method, path, status)
        raise KeyError(f"no operation {operation!r} in the spec")

    def check(self, operation: str, status: int, body: bytes, data: Any) -> None:
        validator = self.response(operation, status)
        if validator is None:
            assert body == b""
            return
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], f"{operation} {status} answer breaks the spec: {errors}"


_strict: dict[int, SpecValidator] = {}


def _for(spec: dict[str, Any]) -> SpecValidator:
    # The spec fixture is session-scoped: convert it once.
    validator = _strict.get(id(spec))
    if validator is None or validator.spec is not spec:
        validator = _strict[id(spec)] = SpecValidator(spec)
    return validator


def validate_response(spec: dict[str, Any], operation_id: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` is exactly what the spec documents."""
    validator = _for(spec).response(operation_id, status)
    assert validator is not None, f"{operation_id} {status} has no body in the spec"
    validator.validate(body)


def validate_schema(spec: dict[str, Any], name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` strictly matches schema ``name``."""
    _for(spec).component(name).validate(instance)
