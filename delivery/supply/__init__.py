"""The supply chain: SBOM, vulnerability audit, deps freshness."""
