"""Swarm: the stack file and the rolling update Swarm runs."""
