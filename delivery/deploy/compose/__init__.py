"""Compose hosts: handover between the blue and green slots behind HAProxy."""
