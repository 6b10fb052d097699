"""The pure FHIR R4 domain: validation, references, search, bundles, outcomes.

Nothing here imports a web framework or an ORM; storage is reached through the
:class:`~medfusion.fhir.repository.FhirRepository` protocol.
"""
