"""Swarm: the stack file and the rolling update Swarm runs.

rollout (deploy, rollback, status) runs the steps: plan (survey and predict), prepull, update
(stack deploy and the waits), measure and outcome, over port.py's SwarmPort (delivery/docker/swarm.py's
Manager for real, a fake in the unit tests); stack.py turns compose's model into the stack file.
"""
