"""The registry: the skopeo client (its argv and errors: skopeo.py), manifests, credentials, and a loopback
registry (local.py, shared with the test bed)."""
