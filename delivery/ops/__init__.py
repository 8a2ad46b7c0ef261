"""Day-2 operations: logs and jobs."""
