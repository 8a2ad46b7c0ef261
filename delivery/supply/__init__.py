"""The supply chain: SBOM, vulnerability audit, deps freshness, and the step between a deps build and its push (SBOM, Debian-package guard)."""
