"""Generate ``src/medfusion/fhir/data/r4_structure.json`` from the fhir.resources R4B models.

The fast validator (:mod:`medfusion.fhir._fastvalidate`) walks resources against this table
instead of building pydantic models. The table is derived, never hand-written, so that it
follows the installed ``fhir.resources`` exactly; ``tests/fhir/test_validation.py`` checks
that the shipped file equals what this script produces now.

Format (``"types"`` maps every model class name to)::

    {"rt": <__resource_type__>, "resource": 0|1,
     "el": {<json key>: [<type>, <list 0|1>, <required 0|1>, <nullable 0|1>, <item nullable 0|1>]},
     "py": {<python field name>: <json key>}      # names accepted too (populate_by_name)
     "choice": [[<required 0|1>, [<json key>, ...]], ...],
     "reqprim": [[<json key>, <extension json key or null>], ...]}

``<type>`` is a FHIR primitive name (``code``, ``dateTime``, ...), a model class name, or
``@Resource`` / ``@Element`` for fields that dispatch on ``resourceType``; the primitive
extension siblings (``_birthDate``) have type ``FHIRPrimitiveExtension`` and
``fhir_comments`` has type ``@comments``.

Usage: ``python scripts/gen_fhir_structure.py [--check]``.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "src/medfusion/fhir/data/r4_structure.json"

# Model validators that every FHIR model inherits; any other one is a rule this generator
# does not know how to express, so generation stops instead of shipping a weaker table.
_BASE_MODEL_VALIDATORS = {"reject_null_complex_elements", "validate_after_model_construction"}
_KNOWN_EXTRA_VALIDATORS = {
    ("FHIRPrimitiveExtension", "validate_extension_or_fhir_comment_required"),
}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Split ``X | None`` into ``(X, True)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(tp))
        if len(args) != 1:
            raise ValueError(f"unexpected union {tp!r}")
        return args[0], nullable
    return tp, False


def _type_name(tp: Any) -> str:
    """Name a field's item type: FHIR primitive, model class or dispatching base."""
    from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    if tp is bool:
        return "boolean"
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        for marker in meta:
            if type(marker) in FHIR_PRIMITIVES_MAPS:
                return FHIR_PRIMITIVES_MAPS[type(marker)]
            if marker in FHIR_PRIMITIVES_MAPS:
                return FHIR_PRIMITIVES_MAPS[marker]
        if typing.get_origin(base) is None and getattr(base, "__name__", "") == "UUID":
            return "uuid"
        raise ValueError(f"unknown annotated type {tp!r}")
    if isinstance(tp, type) and issubclass(tp, FhirBase):
        klass = tp.get_model_klass()
        if issubclass(tp, FhirElementOrResourceBase):
            return "@" + klass.__name__
        return str(klass.__name__)
    raise ValueError(f"unknown field type {tp!r}")


def _describe(klass: Any) -> dict[str, Any]:
    decorators = klass.__pydantic_decorators__
    if decorators.field_validators or decorators.validators:
        raise ValueError(f"{klass.__name__} has field validators")
    for name in decorators.model_validators:
        if name not in _BASE_MODEL_VALIDATORS and (klass.__name__, name) not in (_KNOWN_EXTRA_VALIDATORS):
            raise ValueError(f"{klass.__name__} has unknown model validator {name}")
    elements: dict[str, list[Any]] = {}
    python_names: dict[str, str] = {}
    for field_name, info in klass.model_fields.items():
        key = info.alias or field_name
        if field_name != key:
            python_names[field_name] = key
        if field_name == "fhir_comments":
            elements[key] = ["@comments", 0, 0, 1, 0]
            continue
        tp, nullable = _strip_optional(info.annotation)
        is_list = typing.get_origin(tp) is list
        item_nullable = False
        if is_list:
            tp, item_nullable = _strip_optional(typing.get_args(tp)[0])
        elements[key] = [
            _type_name(tp),
            int(is_list),
            int(info.is_required()),
            int(nullable),
            int(item_nullable),
        ]
    choices = [
        [
            int(klass.model_fields[fields[0]].json_schema_extra["one_of_many_required"] is True),
            [klass.model_fields[f].alias or f for f in fields],
        ]
        for fields in klass.get_one_of_many_fields(None).values()
    ]
    aliases = {name: (info.alias or name) for name, info in klass.model_fields.items()}
    required = [
        [aliases[klass.get_alias_mapping()[name]], aliases[ext] if ext else None]
        for name, ext in klass.get_required_fields(None)
    ]
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    out: dict[str, Any] = {
        "rt": klass.__resource_type__,
        "resource": int(issubclass(klass, FHIRAbstractModel) and klass.has_resource_base()),
        "el": elements,
    }
    if python_names:
        out["py"] = python_names
    if choices:
        out["choice"] = choices
    if required:
        out["reqprim"] = required
    return out


def build_structure() -> dict[str, Any]:
    """Derive the structure table from the installed fhir.resources R4B models.

    Returns
    -------
    dict
        The JSON-ready table described in this module's docstring.
    """
    from fhir.resources.R4B import fhirtypes
    from fhir_core.types import FhirBase

    classes: dict[str, Any] = {}
    for name in sorted(dir(fhirtypes)):
        obj = getattr(fhirtypes, name)
        if name.endswith("Type") and isinstance(obj, type) and issubclass(obj, FhirBase):
            klass = obj.get_model_klass()
            classes[klass.__name__] = klass
    return {
        "source": f"fhir.resources {version('fhir.resources')} R4B",
        "types": {name: _describe(classes[name]) for name in sorted(classes)},
    }


def render() -> str:
    """The exact text of the generated file."""
    return json.dumps(build_structure(), sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str]) -> int:
    """Write the table, or with ``--check`` report whether the shipped one is current."""
    text = render()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date; run scripts/gen_fhir_structure.py")
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
