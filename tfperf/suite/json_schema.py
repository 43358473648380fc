"""The suite file's JSON Schema (`tfperf schema suite`), generated from the pydantic models the loader
validates with, so an editor's YAML language server and `tfperf run` accept the same keys and types.

The schema is a hint for editors, not the validator: checks that need a whole merged case (model xor function,
references that resolve, a deployment mode needing task: infer) are the loader's alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfperf.suite.schema import CaseModel, InputModel, LabelsModel, PipelineModel, SuiteModel
from tfperf.suite.spec import CaseSpec, InputSpec, LabelsSpec, PipelineSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Each model's keys default to the spec field of the same name; the models themselves say None ("not given").
SPEC_OF: dict[type, type] = {
    CaseModel: CaseSpec,
    InputModel: InputSpec,
    LabelsModel: LabelsSpec,
    PipelineModel: PipelineSpec,
}


def suite_schema() -> dict[str, Any]:
    schema = SuiteModel.model_json_schema()
    defs = schema["$defs"]
    for model, spec in SPEC_OF.items():
        _set_defaults(defs[model.__name__]["properties"], spec)
    defs["CaseModel"]["properties"]["batch_size"]["default"] = CaseSpec.batch_sizes[0]
    top = schema["properties"]
    case_ref = {"$ref": "#/$defs/CaseModel"}
    # One model serves a case and `defaults`; the two differ only in `name` (a case's own, never a default).
    top["cases"].update({"items": {"allOf": [case_ref], "required": ["name"]}, "minItems": 1})
    top["defaults"]["anyOf"] = [{"allOf": [case_ref], "not": {"required": ["name"]}}, {"type": "null"}]
    for model in (schema, *defs.values()):
        for prop in model.get("properties", {}).values():
            prop.pop("title", None)  # "Batch Size" says less than the key itself
            if prop.get("default", ...) is None:
                del prop["default"]  # null means "not given", not a value an editor should offer
    return {"$schema": DRAFT, **schema, "title": "tfperf suite"}


def _set_defaults(properties: dict, spec: type) -> None:
    """The spec's default where it has a plain one (not a factory, not None)."""
    fields = {f.name: f for f in dataclasses.fields(spec)}
    for name, prop in properties.items():
        field = fields.get(name)
        if field is not None and field.default is not dataclasses.MISSING and field.default is not None:
            value = field.default
            prop["default"] = list(value) if isinstance(value, tuple) else value
