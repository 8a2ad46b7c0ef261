"""The Docker test bed's parts, one place for all: throwaway engines, registries and bridges.

scripts/testbed starts the shared test bed through this package's CLI (`python3 -m dockerbed`),
the benchmarks and the Docker tests import it to start pieces of their own. Standard library
only (and delivery/registry/local.py, itself standard library only, which `invoke registry` shares with
it to start a loopback registry): scripts/testbed runs it with the system python3, before the project's venv exists.
Never shipped: the runtime image copies only production_control/ (see .dockerignore).
"""


class BedError(Exception):
    """A piece of the test bed could not be started or stopped; the message says what to do."""
