#!/bin/bash
# (b) failure messages + exit codes (default LogLevel INFO, as a user would see them)
D=/work/ssh-research; S="ip netns exec sshr-c ssh -F $D/client.cfg -o LogLevel=${LL:-INFO}"
: > $D/run/kh_empty
grep -v '^10.250.0.2 ' $D/known_hosts > $D/run/kh_changed; echo "10.250.0.2 $(cut -d' ' -f1,2 $D/keys/host_j.pub)" >> $D/run/kh_changed
t() { echo "=== $1"; shift; t0=$(date +%s%N); "$@" true; rc=$?; echo "--- rc=$rc elapsed=$(( ($(date +%s%N)-t0)/1000000 ))ms"; }
t unknown-host-key   $S -o UserKnownHostsFile=$D/run/kh_empty target
t changed-host-key   $S -o UserKnownHostsFile=$D/run/kh_changed target
t key-refused        $S -o IdentityFile=$D/keys/bad target
t server-down-refused $S -o Port=2222 target
t server-down-noroute $S -o HostName=10.250.0.3 target
t jump-unknown-key   $S -o UserKnownHostsFile=$D/run/kh_empty via-jump
