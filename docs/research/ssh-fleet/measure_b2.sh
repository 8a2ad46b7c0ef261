#!/bin/bash
# (b) part 2: refused key, real sshd down, silent drop, jump host key unknown
D=/work/ssh-research; N="ip netns exec sshr-c"
t() { echo "=== $1"; shift; t0=$(date +%s%N); "$@"; rc=$?; echo "--- rc=$rc elapsed=$(( ($(date +%s%N)-t0)/1000000 ))ms"; }
sed "s#IdentityFile .*#IdentityFile $D/keys/bad#; s#LogLevel ERROR#LogLevel INFO#" $D/client.cfg > $D/run/badkey.cfg
t key-refused $N ssh -F $D/run/badkey.cfg target true
grep -v '^10.250.0.6 ' $D/known_hosts > $D/run/kh_nojump
sed "s#UserKnownHostsFile .*#UserKnownHostsFile $D/run/kh_nojump#; s#LogLevel ERROR#LogLevel INFO#" $D/client.cfg > $D/run/nojump.cfg
t jump-host-key-unknown $N ssh -F $D/run/nojump.cfg via-jump true
t jump-target-unreachable $N ssh -F $D/client.cfg -o LogLevel=INFO -o HostName=10.250.0.14 via-jump true
ip -n sshr-c route replace 10.250.1.0/24 via 10.250.0.2 2>/dev/null
t silent-drop-ConnectTimeout5 $N ssh -F $D/client.cfg -o LogLevel=INFO -o HostName=10.250.1.1 target true
ip -n sshr-c route del 10.250.1.0/24
kill $(cat $D/run/sshd_a.pid); sleep 0.3
t sshd-stopped $N ssh -F $D/client.cfg -o LogLevel=INFO target true
ip netns exec sshr-a /usr/sbin/sshd -f $D/sshd_a.conf -E $D/log/sshd_a.log
