#!/bin/bash
D=/work/ssh-research; mkdir -p /run/sshd  # the privsep dir sshd needs
for s in a j; do ip netns exec sshr-$s /usr/sbin/sshd -f $D/sshd_$s.conf -E $D/log/sshd_$s.log; done
sleep 0.3; cat $D/run/sshd_*.pid
