"""Synthetic patients as FHIR R4 transaction Bundles, shaped like Synthea's output.

:func:`generate_bundle` makes one patient; :func:`write_bundles` writes a cohort, one
``<patient-id>.json`` per patient. Conditions, lab and vital trajectories, medications,
admissions and deaths come from a small clinical model (see :mod:`medfusion.synth.model`)
so that outcomes carry real signal. Output depends only on the seed.
"""

from medfusion.synth.model import REFERENCE
from medfusion.synth.writer import (
    MAX_PATIENTS,
    SynthSummary,
    check_arguments,
    generate_bundle,
    write_bundles,
)

__all__ = [
    "MAX_PATIENTS",
    "REFERENCE",
    "SynthSummary",
    "check_arguments",
    "generate_bundle",
    "write_bundles",
]
