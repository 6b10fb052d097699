"""medfusion: records and clinical AI in one place.

The package is layered (see ``docs/architecture.md``): ``errors`` and ``config`` at the
core, the pure FHIR domain in :mod:`medfusion.fhir`, storage in :mod:`medfusion.store`,
use cases in :mod:`medfusion.services`, and thin adapters in :mod:`medfusion.api` and
:mod:`medfusion.cli`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
