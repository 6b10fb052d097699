"""Every generated resource is valid FHIR R4 (checked with the fhir.resources R4B models)."""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class

from medfusion.synth import generate_bundle


def test_small_cohort_validates_against_r4_models() -> None:
    checked: set[str] = set()
    deceased = admissions = 0
    bundle_model = get_fhir_model_class("Bundle")
    for index in range(40):
        bundle = generate_bundle(index, 5)
        bundle_model.model_validate(bundle)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            checked.add(resource["resourceType"])
            deceased += "deceasedDateTime" in resource
            admissions += resource.get("class", {}).get("code") == "IMP"
    assert checked >= {
        "Patient",
        "Practitioner",
        "Organization",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
    }
    # The optional parts (death, admissions) were exercised too.
    assert deceased > 0
    assert admissions > 0
