#!/bin/sh
exec /usr/bin/ssh -F /work/ssh-research/task-ssh.cfg "$@"

# Put first on PATH of the docker CLI child (commandconn execs "ssh" from PATH). Tested as run/bin3/ssh.
