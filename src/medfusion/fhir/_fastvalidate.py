"""The fast structural walk: a resource dict against the generated R4 structure table.

It reproduces the accept/reject decision of ``fhir.resources`` R4B (pydantic v2, lax mode)
without building models:

* unknown keys are rejected (``extra="forbid"``); ``resourceType``/``resource_type`` are
  popped by fhir_core's ``__init__`` on every model and only compared with the model's own
  type;
* lists must be lists and single elements must not be; ``null`` is allowed for optional
  elements and inside primitive lists (the ``_element`` placeholders) but not inside
  complex lists nor for required complex elements;
* required primitives may be replaced by an ``_element`` extension, choice groups allow at
  most one ``value[x]``, and ``_element`` objects need ``id``, ``extension`` or comments;
* ``Resource``-typed fields (``contained``, ``Bundle.entry.resource``) dispatch on the
  value's ``resourceType``; without one it is validated as the bare ``Resource`` base.

Inputs that would need pydantic's lax coercions or other rare paths raise
:class:`~medfusion.fhir._primitives.Unsure`; the caller then asks the reference validator.
"""

from __future__ import annotations

from typing import Any

from medfusion.fhir._primitives import Unsure
from medfusion.fhir._structure import COMMENTS, COMPLEX, ElementSpec, TypeSpec, load_types

__all__ = ["Invalid", "Unsure", "check_resource"]


class Invalid(Exception):  # noqa: N818 - internal signal, turned into a medfusion error
    """A certain rejection; ``path`` collects keys and indexes innermost first."""

    def __init__(self, rule: str, *path: str | int) -> None:
        super().__init__(rule)
        self.rule = rule
        self.path: list[str | int] = list(path)

    def expression(self, root: str) -> str:
        """The FHIRPath-like location, e.g. ``Patient.name[0].given[1]``."""
        out = [root]
        for part in reversed(self.path):
            out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        return "".join(out)


_JSON_SCALARS = (str, int, float, bool)
_JSON_VALUES = (str, int, float, bool, dict)


def _check_resource_field(value: dict[str, Any], types: dict[str, TypeSpec]) -> None:
    """A ``Resource``-typed value: pick its model from ``resourceType`` like fhir_core."""
    if "resourceType" not in value:
        _check_object(value, types["Resource"], types)
        return
    name = value["resourceType"]
    if type(name) is not str:
        raise Unsure  # fhir_core fails with a raw TypeError; let the reference say so
    spec = types.get(name)
    if spec is None or spec.resource_type != name:
        raise Invalid("resourceType is not a known resource type", "resourceType")
    if not spec.is_resource:
        raise Invalid("resourceType names a datatype, not a resource", "resourceType")
    _check_object(value, spec, types)


def _check_single(el: ElementSpec, value: Any, types: dict[str, TypeSpec]) -> None:
    check = el.check
    if check is not None:  # a primitive
        rule = check(value)
        if rule is not None:
            raise Invalid(rule)
        return
    kind = el.kind
    if type(value) is dict:
        if kind == COMPLEX:
            _check_object(value, types[el.type], types)
        else:
            _check_resource_field(value, types)
        return
    if isinstance(value, _JSON_SCALARS) and type(value) is not str:
        raise Invalid("must be an object")
    # a str is parsed as JSON by fhir_core (model_validate_json); other types are not JSON
    raise Unsure


def _check_comments(value: Any) -> None:
    if type(value) is str:
        return
    if type(value) is list:
        if all(type(item) is str for item in value):
            return
        raise Invalid("must be a string or a list of strings")
    if isinstance(value, _JSON_VALUES):
        raise Invalid("must be a string or a list of strings")
    raise Unsure


def _check_value(el: ElementSpec, value: Any, types: dict[str, TypeSpec]) -> None:
    if el.kind == COMMENTS:
        _check_comments(value)
        return
    if not el.is_list:
        if type(value) is list:
            raise Invalid("must be a single value, not an array")
        _check_single(el, value, types)
        return
    if type(value) is not list:
        if isinstance(value, _JSON_VALUES):
            raise Invalid("must be an array")
        raise Unsure  # tuples, sets, generators: pydantic's lax list rules
    for index, item in enumerate(value):
        if item is None:
            if el.item_nullable:
                continue
            raise Invalid("null is not allowed in this array", index)
        if type(item) is list:
            raise Invalid("arrays cannot be nested", index)
        try:
            _check_single(el, item, types)
        except Invalid as exc:
            exc.path.append(index)
            raise


def _check_extra(key: Any, value: Any, spec: TypeSpec, obj: dict[str, Any]) -> None:
    if type(key) is not str:
        raise Unsure
    if key in spec.python_names:
        raise Unsure  # populate_by_name: alias/name clashes are pydantic's business
    if key == "resource_type" and "resourceType" in obj and not spec.has_resource_type_element:
        return  # fhir_core pops it but compares the resourceType instead
    if key in ("resourceType", "resource_type"):
        if value is None or value == spec.resource_type:
            return
        raise Invalid(f"resourceType must be {spec.resource_type}", key)
    raise Invalid("unknown element", key)


def _check_object(obj: dict[str, Any], spec: TypeSpec, types: dict[str, TypeSpec]) -> None:
    elements = spec.elements
    for key, value in obj.items():
        el = elements.get(key)
        if el is None:
            _check_extra(key, value, spec, obj)
            continue
        if value is None:
            if el.accepts_null:
                continue
            raise Invalid("must not be null", key)
        try:
            _check_value(el, value, types)
        except Invalid as exc:
            exc.path.append(key)
            raise
    for key in spec.required:
        # (a python-name key would already have raised Unsure in the loop above)
        if key not in obj:
            raise Invalid("required element is missing", key)
    for required, keys in spec.choices:
        found = 0
        for key in keys:
            if obj.get(key) is not None:
                found += 1
        if found > 1:
            raise Invalid("only one type may be given for a choice element", _choice(keys))
        if required and not found:
            raise Invalid("required choice element is missing", _choice(keys))
    for key, ext in spec.required_primitives:
        if obj.get(key) is None and not _has_extension(obj, key, ext, spec):
            raise Invalid("required element is missing", key)
    if spec.needs_one_of and all(obj.get(key) is None for key in spec.needs_one_of):
        raise Invalid("needs id, extension or fhir_comments")


def _has_extension(obj: dict[str, Any], key: str, ext: str | None, spec: TypeSpec) -> bool:
    """fhir_core lets an ``_element`` with extensions stand in for a required primitive."""
    if ext is None:
        return False
    ext_value = obj.get(ext)
    if ext_value is None:
        return False
    if spec.elements[key].is_list:
        raise Unsure  # fhir_core fails with a raw AttributeError here
    return bool(ext_value.get("extension"))


def _choice(keys: tuple[str, ...]) -> str:
    stem = keys[0]
    # the common lowercase prefix of valueString, valueQuantity, ... is the choice's name
    while stem and not all(k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper() for k in keys):
        stem = stem[:-1]
    return f"{stem}[x]"


def check_resource(resource: dict[str, Any], type_name: str) -> None:
    """Walk ``resource`` as an instance of ``type_name``.

    Raises
    ------
    Invalid
        fhir.resources would reject it; ``path`` names the element.
    Unsure
        The input needs the reference validator's lax coercion rules.
    """
    types = load_types()
    _check_object(resource, types[type_name], types)
