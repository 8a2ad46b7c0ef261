"""Settings: the deploy configuration, hosts, the project on disk, versions and platform names (imports only errors)."""
