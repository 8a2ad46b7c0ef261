#!/bin/bash
# Stops the research sshds (by pid file) and deletes the netns (their veths go with them).
D=/work/ssh-research
for f in $D/run/sshd_*.pid; do [ -f $f ] && kill $(cat $f) 2>/dev/null; done
for n in sshr-c sshr-j sshr-a; do ip netns pids $n 2>/dev/null | xargs -r kill; ip netns del $n 2>/dev/null; done
