"""A host: its lock, its deploy history, retention, and the services it runs."""
