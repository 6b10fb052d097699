"""FHIR R4 structure validation: a fast path and the fhir.resources reference it matches.

:func:`validate_resource` walks a resource dict against a structure table generated from
the ``fhir.resources`` R4B models (``scripts/gen_fhir_structure.py``), roughly 10-30x
faster than building the pydantic models. :func:`validate_resource_reference` is the slow
path through ``fhir.resources`` itself. The two give the same accept/reject decision;
``tests/fhir/test_validation.py`` checks that on real and crafted resources. For the rare
inputs that need pydantic's lax coercions (a string where a boolean belongs, a number
where a date belongs, ...) the fast path defers to the reference, so it never disagrees.

Both raise :class:`~medfusion.errors.ResourceValidationError` naming the element at fault
as a FHIRPath-like expression; messages name the element and rule, never the value.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from medfusion.errors import InvalidRequestError, ResourceValidationError, UnknownResourceTypeError
from medfusion.fhir._fastvalidate import Invalid, Unsure, check_resource
from medfusion.fhir._structure import abstract_resource_types, load_types

__all__ = [
    "RESOURCE_TYPES",
    "is_resource_type",
    "validate_resource",
    "validate_resource_reference",
]

RESOURCE_TYPES: frozenset[str] = frozenset(
    name for name, spec in load_types().items() if spec.is_resource and name not in abstract_resource_types()
)
"""Every concrete R4 resource type the fhir.resources R4B models know."""


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a concrete R4 resource type (e.g. ``"Patient"``).

    Parameters
    ----------
    name
        A candidate ``resourceType``.

    Returns
    -------
    bool
        True for the resource types in :data:`RESOURCE_TYPES`.
    """
    return name in RESOURCE_TYPES


def _resource_type(resource: object, expected_type: str | None) -> str:
    """The checks both paths share: a JSON object with a known, expected resourceType."""
    if not isinstance(resource, dict):
        raise ResourceValidationError("A resource must be a JSON object", code="structure")
    name = resource.get("resourceType")
    if name is None:
        raise ResourceValidationError(
            "The resource has no resourceType", expression=["resourceType"], code="structure"
        )
    if type(name) is not str:
        raise ResourceValidationError(
            "resourceType must be a string", expression=["resourceType"], code="structure"
        )
    if name not in RESOURCE_TYPES:
        # the name is echoed: it is a type name from the request, not patient data
        raise UnknownResourceTypeError(f"Unknown resource type {name[:64]!r}")
    if expected_type is not None and name != expected_type:
        raise InvalidRequestError(
            f"resourceType {name} does not match the expected type {expected_type}",
            expression=["resourceType"],
        )
    return name


def validate_resource(resource: object, *, expected_type: str | None = None) -> None:
    """Check a resource against the FHIR R4 structure (the fast path).

    Parameters
    ----------
    resource
        The decoded JSON of one resource. It is not modified.
    expected_type
        When given, the ``resourceType`` the caller requires (e.g. from the URL).

    Raises
    ------
    ResourceValidationError
        The input is not a JSON object, has no ``resourceType`` (code ``structure``), or
        does not conform; ``expression`` names the element, e.g.
        ``Observation.valueQuantity.value``.
    UnknownResourceTypeError
        ``resourceType`` is not an R4 resource type.
    InvalidRequestError
        ``resourceType`` differs from ``expected_type``.
    """
    name = _resource_type(resource, expected_type)
    assert isinstance(resource, dict)  # checked above; narrows the type for mypy
    try:
        check_resource(resource, name)
    except Invalid as exc:
        expression = exc.expression(name)
        raise ResourceValidationError(
            f"{expression}: {exc.rule}", expression=[expression], code="structure"
        ) from None
    except Unsure:
        # unusual JSON types need pydantic's lax rules: take the reference's decision
        validate_resource_reference(resource, expected_type=expected_type)


@cache
def _model(name: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(name)


def _loc_expression(root: str, loc: tuple[int | str, ...]) -> str:
    out = [root]
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part == "resource_type":
            out.append(".resourceType")
        elif part != "root":  # fhir_core's marker for a whole nested model
            out.append(f".{part}")
    return "".join(out)


def validate_resource_reference(resource: object, *, expected_type: str | None = None) -> None:
    """Check a resource with the ``fhir.resources`` R4B models (the slow reference path).

    Parameters
    ----------
    resource
        The decoded JSON of one resource. It is not modified.
    expected_type
        When given, the ``resourceType`` the caller requires.

    Raises
    ------
    ResourceValidationError
        As :func:`validate_resource`; ``expression`` is the first pydantic error's location.
    UnknownResourceTypeError
        ``resourceType`` is not an R4 resource type.
    InvalidRequestError
        ``resourceType`` differs from ``expected_type``.
    """
    from pydantic import ValidationError

    name = _resource_type(resource, expected_type)
    try:
        _model(name).model_validate(resource)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False, include_context=False)[0]
        expression = _loc_expression(name, tuple(first["loc"]))
        # pydantic's ``msg`` describes the rule; the offending input is left out on purpose
        raise ResourceValidationError(
            f"{expression}: {first['msg']}", expression=[expression], code="structure"
        ) from None
    except (KeyError, TypeError, AttributeError) as exc:
        # fhir_core fails this way on an unknown or non-string contained resourceType
        raise ResourceValidationError(
            f"{name}: invalid nested resource ({type(exc).__name__})",
            expression=[name],
            code="structure",
        ) from None
