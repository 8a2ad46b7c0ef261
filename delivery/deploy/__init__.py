"""Deploying a release: compose hosts (blue/green behind the proxy) and swarm stacks."""
