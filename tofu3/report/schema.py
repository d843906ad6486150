"""The JSON Schema of ``tofu3.report/v1`` and a small validator for it (no dependency).

``REPORT_SCHEMA`` is the schema (JSON Schema 2020-12; docs/report.schema.json is this dict
written out, and a test keeps the two equal). The validator understands the keywords the
schema uses: type, const, enum, pattern, minimum, required, properties,
additionalProperties, items, $ref (to #/$defs/...). Reports may carry fields the schema does
not know (the schema grows additively); ``strict=True`` reports them, which is how the tests
keep the schema complete.
"""

from __future__ import annotations

import re
from typing import Any

_DIGEST = r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$"
_NULLABLE_DIGEST = {"type": ["string", "null"], "pattern": _DIGEST}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://tofu3.dev/schemas/tofu3.report/v1.json",
    "title": "tofu3 verification report (tofu3.report/v1)",
    "description": "One reference's verification. Extended only additively: ignore fields "
    "you do not know.",
    "type": "object",
    "required": ["schema", "reference", "resolved", "verdict", "vantages", "artifacts", "findings"],
    "properties": {
        "schema": {"const": "tofu3.report/v1"},
        "tool": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
        },
        "generated_at": _TIMESTAMP,
        "reference": {"type": "string"},
        "resolved": {
            "type": "object",
            "required": ["registry", "repository", "tag", "digest"],
            "properties": {
                "registry": {"type": "string"},
                "registry_host": {"type": "string"},
                "repository": {"type": "string"},
                "tag": _NULLABLE_STRING,
                "digest": _NULLABLE_DIGEST,
                "pinned_digest": _NULLABLE_DIGEST,
                "url": {"type": "string"},
                "final_url": _NULLABLE_STRING,
            },
        },
        "verdict": {"$ref": "#/$defs/verdict"},
        "exit_code": {"enum": [0, 1, 3]},
        "pinned_reference": _NULLABLE_STRING,
        "vantages": {"type": "array", "items": {"$ref": "#/$defs/vantage"}},
        "artifacts": {"type": "array", "items": {"$ref": "#/$defs/artifact"}},
        "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
        "tag_history": {"$ref": "#/$defs/tag_history"},
        "signoff": {"$ref": "#/$defs/signoff"},
    },
    "$defs": {
        "verdict": {"enum": ["accepted", "rejected", "inconclusive"]},
        "vantage": {
            "type": "object",
            "required": ["name", "host", "ok", "curl_version", "error"],
            "properties": {
                "name": {"type": "string"},
                "host": {"type": "string"},
                "ok": {"type": "boolean"},
                "curl_version": {"type": "string"},
                "hash_tool": {"type": "string"},
                "host_key_fingerprint": {"type": "string"},
                "duration_seconds": {"type": "number", "minimum": 0},
                "remote_ips": {"type": "array", "items": {"type": "string"}},
                "error": _NULLABLE_STRING,
                "error_code": _NULLABLE_STRING,
                "error_kind": {"enum": [None, "transport", "integrity", "configuration"]},
                "error_artifact": _NULLABLE_STRING,
            },
        },
        "artifact": {
            "type": "object",
            "required": [
                "kind",
                "digest",
                "size",
                "media_type",
                "platform",
                "observations",
                "agreed",
            ],
            "properties": {
                "key": {"type": "string"},
                "kind": {"enum": ["index", "manifest", "config", "layer", "file"]},
                "digest": _NULLABLE_DIGEST,
                "size": {"type": ["integer", "null"], "minimum": 0},
                "media_type": _NULLABLE_STRING,
                "platform": _NULLABLE_STRING,
                "observations": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/observation"},
                },
                "agreed": {"type": "boolean"},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "observation": {
            "type": "object",
            "required": ["digest", "size"],
            "properties": {
                "digest": {"type": "string", "pattern": _DIGEST},
                "size": {"type": "integer", "minimum": 0},
                "expected_digest": _NULLABLE_DIGEST,
                "expected_size": {"type": ["integer", "null"], "minimum": 0},
                "status": {"type": "integer"},
                "remote_ip": {"type": "string"},
                "url": {"type": "string"},
                "redirects": {"type": "integer", "minimum": 0},
            },
        },
        "finding": {
            "type": "object",
            "required": ["severity", "code", "message", "vantage", "digest"],
            "properties": {
                "severity": {"enum": ["critical", "error", "warning"]},
                "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                "message": {"type": "string"},
                "vantage": _NULLABLE_STRING,
                "digest": _NULLABLE_DIGEST,
                "artifact": _NULLABLE_STRING,
            },
        },
        "tag_history": {
            "type": "object",
            "required": ["previous_accepted", "accept_tag_move", "tag_moved"],
            "properties": {
                "previous_accepted": {
                    "type": ["object", "null"],
                    "required": ["digest", "verified_at", "reference"],
                    "properties": {
                        "digest": {"type": "string", "pattern": _DIGEST},
                        "verified_at": _TIMESTAMP,
                        "reference": {"type": "string"},
                    },
                },
                "accept_tag_move": {"type": "boolean"},
                "tag_moved": {"type": "boolean"},
            },
        },
        "signoff": {
            "type": "object",
            "required": ["identity", "public_key", "fingerprint", "namespace"],
            "properties": {
                "identity": _NULLABLE_STRING,
                "public_key": {"type": "string"},
                "fingerprint": {"type": "string", "pattern": "^SHA256:[A-Za-z0-9+/]{43}$"},
                "namespace": {"type": "string"},
            },
        },
    },
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON's true is not 1
    return isinstance(value, _TYPES[name])


def validate(
    document: object, schema: dict[str, Any] = REPORT_SCHEMA, *, strict: bool = False
) -> list[str]:
    """Every way ``document`` breaks ``schema``, as ``path: problem`` lines (empty: valid)."""
    validator = _Validator(schema, strict)
    validator.check(document, schema, "$")
    return validator.problems


class _Validator:
    def __init__(self, root: dict[str, Any], strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.problems: list[str] = []

    def check(self, value: object, schema: dict[str, Any], path: str) -> None:
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            self.check(value, self.root["$defs"][name], path)
            return
        if "const" in schema and value != schema["const"]:
            self.problems.append(f"{path}: must be {schema['const']!r}")
        if "enum" in schema and not any(
            value == option and type(value) is type(option) for option in schema["enum"]
        ):
            self.problems.append(f"{path}: must be one of {schema['enum']!r}")
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_type_ok(value, name) for name in names):
                self.problems.append(f"{path}: must be {' or '.join(names)}")
                return
        pattern = schema.get("pattern")
        if isinstance(value, str) and pattern is not None and not re.search(pattern, value):
            self.problems.append(f"{path}: does not match {pattern}")
        minimum = schema.get("minimum")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and minimum is not None and value < minimum:
            self.problems.append(f"{path}: must be at least {minimum}")
        if isinstance(value, dict):
            self.check_object(value, schema, path)
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                self.check(item, schema["items"], f"{path}[{index}]")

    def check_object(self, value: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        for key in schema.get("required", []):
            if key not in value:
                self.problems.append(f"{path}: missing {key!r}")
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                self.check(item, properties[key], where)
            elif isinstance(extra, dict):
                self.check(item, extra, where)
            elif extra is False or (self.strict and properties):
                self.problems.append(f"{where}: not in the schema")
