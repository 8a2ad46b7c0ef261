"""Layer economics: what each kind of release costs a server, for our design and the original one.

`python -m benchmarks.run` builds a chain of releases (first deploy, code-only
release, clean rebuild, dependency bump, new dependency, base image change) with
our invoke tasks and with the seed's Dockerfile (benchmarks/baseline), pulls each
release on a server with the classic overlay2 image store and one with the
containerd image store, and reads from the registry's access log what each pull
downloaded. See docs/performance.md.
"""
