"""The committed schemas (tests/schemas/) against Hathora's OpenAPI document.

The suite validates the fake against the project's own schemas; this module is what
keeps those honest. It converts the spec's OpenAPI 3.0 schemas to the same strict
JSON Schema dialect and compares them model by model and operation by operation.
The spec lives outside the repository: without it these tests skip, and CI sets
HATHORA_REQUIRE_SPEC=1 so that a missing spec fails instead.

The conversion: ``nullable`` becomes ``anyOf [..., null]``; every object schema gets
``additionalProperties: false``; an ``allOf`` of object schemas
(``RoomConnectionData``) is merged into one object, since each branch closed on its
own would refuse the other's keys; an ``allOf`` of one schema is that schema; alias
chains (``RoomWithoutAllocations`` -> ``Omit_...`` -> ``Pick_...``) resolve to the
object they name; annotations (description, example) are not compared. The spec's
Region enum predates Johannesburg and Dubai: the comparison adds them, and only them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _schema import NEWER_REGIONS, schemas

COMPONENT_REF = "#/components/schemas/"
COMMITTED_REF = "hathora.schema.json#/$defs/"
# Keys whose value is one schema, a list of schemas, or a name -> schema mapping.
SCHEMA_KEYS = ("items", "not", "additionalProperties")
SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf")
# Annotations and OpenAPI-only keys: not part of what an instance must satisfy.
DROPPED_KEYS = (
    "description",
    "example",
    "title",
    "nullable",
    "xml",
    "externalDocs",
    "deprecated",
    "discriminator",
)


def _is_alias(node: Any) -> bool:
    return isinstance(node, dict) and "$ref" in node and set(node) <= {"$ref", "description"}


class Converter:
    """Spec schemas in the committed dialect, refs renamed to the committed models."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.components: dict[str, Any] = spec["components"]["schemas"]
        self.paths: dict[str, Any] = spec["paths"]
        self.committed = set(schemas().defs)

    def _target(self, ref: str) -> str:
        """The committed model a spec ref means: its own name, or the alias chain's next."""
        name = ref.removeprefix(COMPONENT_REF)
        while name not in self.committed and _is_alias(self.components.get(name)):
            name = self.components[name]["$ref"].removeprefix(COMPONENT_REF)
        return name

    def _body(self, name: str) -> Any:
        node = self.components[name]
        while _is_alias(node):
            node = self.components[node["$ref"].removeprefix(COMPONENT_REF)]
        return node

    def _merged(self, branches: list[Any]) -> dict[str, Any] | None:
        """One object schema equal to an ``allOf`` of object schemas, or None if it is not."""
        resolved = [
            self._body(b["$ref"].removeprefix(COMPONENT_REF)) if _is_alias(b) else b
            for b in branches
        ]
        if len(resolved) < 2 or not all(
            isinstance(b, dict) and b.get("type") == "object" and "allOf" not in b for b in resolved
        ):
            return None
        properties: dict[str, Any] = {}
        required: list[str] = []
        for branch in resolved:
            properties.update(branch.get("properties", {}))
            required += [n for n in branch.get("required", []) if n not in required]
        return {"type": "object", "properties": properties, "required": required}

    def convert(self, node: Any, ref_prefix: str) -> Any:
        """One OpenAPI 3.0 schema object in the committed JSON Schema dialect."""
        if not isinstance(node, dict):
            return node
        if "allOf" in node:
            merged = self._merged(node["allOf"])
            if merged is not None:
                node = {**{k: v for k, v in node.items() if k != "allOf"}, **merged}
            elif len(node["allOf"]) == 1:
                rest = {k: v for k, v in node.items() if k != "allOf"}
                node = {**node["allOf"][0], **rest}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED_KEYS:
                continue
            if key == "properties":
                out[key] = {n: self.convert(s, ref_prefix) for n, s in value.items()}
            elif key in SCHEMA_KEYS:
                out[key] = self.convert(value, ref_prefix)
            elif key in SCHEMA_LIST_KEYS:
                out[key] = [self.convert(s, ref_prefix) for s in value]
            elif key == "$ref":
                out[key] = ref_prefix + self._target(value)
            else:
                out[key] = value
        if out.get("type") == "object" and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if node.get("nullable") is True:
            out = {"anyOf": [out, {"type": "null"}]}
        return out

    def model(self, name: str) -> Any:
        converted = self.convert(self._body(name), "#/$defs/")
        if name == "Region":
            known = converted["enum"]
            assert not set(NEWER_REGIONS) & set(known), "the spec now lists the newer regions"
            converted = {**converted, "enum": [*known, *NEWER_REGIONS]}
        return converted

    def operation(self, operation_id: str) -> dict[str, Any]:
        """The committed shape of one operation: method, path, request body, answers."""
        for path, item in self.paths.items():
            for method, op in item.items():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    return self._operation(method, path, op)
        raise KeyError(f"no operation {operation_id!r} in the spec")

    def _operation(self, method: str, path: str, op: dict[str, Any]) -> dict[str, Any]:
        shape: dict[str, Any] = {"method": method, "path": path}
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            shape["requestBody"] = self.convert(body["schema"], COMMITTED_REF)
        shape["responses"] = {
            status: (
                self.convert(answer["content"]["application/json"]["schema"], COMMITTED_REF)
                if answer.get("content")
                else None
            )
            for status, answer in op["responses"].items()
        }
        return shape


def _strip_annotations(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_annotations(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {
        k: (
            {n: _strip_annotations(s) for n, s in v.items()}
            if k == "properties"
            else _strip_annotations(v)
        )
        for k, v in node.items()
        if k not in ("description", "title")
    }


def differences(spec: dict[str, Any]) -> list[str]:
    """Every place where the committed schemas and the spec disagree, named."""
    ours = schemas()
    convert = Converter(spec)
    found: list[str] = []
    for name, committed in ours.defs.items():
        if name not in spec["components"]["schemas"]:
            found.append(f"model {name}: not in the spec")
        elif _strip_annotations(committed) != convert.model(name):
            found.append(f"model {name}: committed {committed} != spec {convert.model(name)}")
    referenced: set[str] = set()
    for operation_id, committed in ours.operations.items():
        expected = convert.operation(operation_id)
        if committed != expected:
            found.append(f"operation {operation_id}: committed {committed} != spec {expected}")
        referenced |= _refs(expected, COMMITTED_REF)
    for name in list(referenced):
        referenced |= _refs(convert.model(name), "#/$defs/") if name in ours.defs else set()
    if missing := referenced - set(ours.defs):
        found.append(f"models the operations use and the schemas lack: {sorted(missing)}")
    if unused := set(ours.defs) - _closure(ours.defs, referenced):
        found.append(f"models no operation uses: {sorted(unused)}")
    return found


def _refs(node: Any, prefix: str) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(n, prefix) for n in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].removeprefix(prefix)} if "$ref" in node else set()
    return found.union(*(_refs(v, prefix) for v in node.values()))


def _closure(defs: dict[str, Any], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [r for r in _refs(defs[name], "#/$defs/") if r in defs]
    return seen


def test_committed_schemas_match_the_spec(spec: dict[str, Any]) -> None:
    assert differences(spec) == []


@pytest.mark.parametrize(
    ("where", "change", "expected"),
    [
        (("ProcessV2", "properties"), {"surprise": {"type": "string"}}, "model ProcessV2"),
        (("ProcessStatus", "enum"), ["hibernating"], "model ProcessStatus"),
        (("Region", "enum"), ["Atlantis"], "model Region"),
        (("ExposedPort", "properties", "port"), {"format": "int64"}, "model ExposedPort"),
        (("RoomConfig",), {"maxLength": 20000}, "model RoomConfig"),
    ],
)
def test_the_comparison_catches_drift(
    spec: dict[str, Any], where: tuple[str, ...], change: Any, expected: str
) -> None:
    # A comparison that cannot fail is worth nothing: each kind of drift is named.
    drifted = copy.deepcopy(spec)
    node = drifted["components"]["schemas"]
    for key in where:
        node = node[key]
    if isinstance(node, list):
        node += change
    else:
        node.update(change)
    assert any(d.startswith(expected) for d in differences(drifted)), differences(drifted)


def test_the_comparison_catches_nullability_answers_and_new_models(
    spec: dict[str, Any],
) -> None:
    drifted = copy.deepcopy(spec)
    models = drifted["components"]["schemas"]
    models["ProcessV2"]["properties"]["startedAt"].pop("nullable")
    models["ProcessV2"]["properties"]["host"] = {"$ref": COMPONENT_REF + "Host"}
    models["Host"] = {"type": "string"}
    create = drifted["paths"]["/processes/v2/{appId}/create/{region}"]["post"]
    create["responses"]["429"] = create["responses"]["401"]
    found = differences(drifted)
    assert any(d.startswith("model ProcessV2") and "startedAt" in d for d in found), found
    assert any(d.startswith("operation CreateProcess") for d in found), found
    assert any("lack: ['Host']" in d for d in found), found
