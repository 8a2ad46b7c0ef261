"""The registry: the skopeo client, manifests and credentials."""
