"""Helpers of the Docker integration tests, imported by their package name (`from tests.integration.support.loadgen import ...`).

The test bed and its engines (testbed), app containers (appcontainer), task runs in clones (tasks_helpers), the fault
bed and its releases (faults_helpers), the swarm bed (swarm_helpers), load (loadgen), results files (results), build
logs (buildlog), saved images (savedimage) and a stalling registry (stalling). The benchmarks import them the same way.
"""
