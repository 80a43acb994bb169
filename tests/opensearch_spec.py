"""The OpenSearch API specification (multi-file OpenAPI 3.1 YAML) as JSON Schema validators."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.shared_data import DATA as SHARED_DATA

SPEC_DIR = Path(os.environ.get("OPENSEARCH_API_SPEC", SHARED_DATA / "opensearch-api-spec")) / "spec"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoDates(_Loader):  # type: ignore[misc,valid-type]
    """YAML loader that keeps dates as strings, as JSON Schema expects."""


_NoDates.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def available() -> bool:
    """True when the specification folder is present."""
    return (SPEC_DIR / "namespaces" / "_core.yaml").is_file()


def _uri(relative: str) -> str:
    return (SPEC_DIR / relative).resolve().as_uri()


@cache
def registry() -> Registry:
    """Every spec file as a resource, addressed by its relative path so cross-file ``$ref``s resolve."""
    resources = []
    for path in sorted(SPEC_DIR.rglob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            contents = yaml.load(handle, Loader=_NoDates)  # noqa: S506 - a SafeLoader subclass
        resources.append((path.resolve().as_uri(), Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@cache
def validator(ref: str) -> Draft202012Validator:
    """A validator for the schema at ``ref``, e.g. ``namespaces/_core.yaml#/components/schemas/X``."""
    registry()  # loads the files
    path, _, fragment = ref.partition("#")
    return Draft202012Validator({"$ref": _uri(path) + "#" + fragment}, registry=registry())


def request_body_validator(namespace: str, name: str) -> Draft202012Validator:
    """The validator of a request body: ``namespace`` file and ``#/components/requestBodies/<name>``."""
    body = registry().contents(_uri(f"namespaces/{namespace}.yaml"))["components"]["requestBodies"][name]
    media = next(iter(body["content"]))
    return validator(f"namespaces/{namespace}.yaml#/components/requestBodies/{name}/content/"
                     + media.replace("/", "~1") + "/schema")


def response_validator(namespace: str, name: str) -> Draft202012Validator:
    """The validator of a response body: ``namespace`` file and ``#/components/responses/<name>``."""
    return validator(f"namespaces/{namespace}.yaml#/components/responses/{name}/content/application~1json/schema")


def schema_validator(file: str, name: str) -> Draft202012Validator:
    """The validator of ``schemas/<file>.yaml#/components/schemas/<name>``."""
    return validator(f"schemas/{file}.yaml#/components/schemas/{name}")


def errors(validator_: Draft202012Validator, instance: Any) -> list[str]:
    """Readable validation errors, empty when the instance is valid."""
    return [f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:300]}"
            for error in validator_.iter_errors(instance)]
