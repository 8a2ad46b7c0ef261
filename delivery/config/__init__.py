"""Settings: the deploy configuration and its validators, hosts, image references, the project on disk, versions
and platform names (imports only errors)."""
