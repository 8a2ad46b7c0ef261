#!/bin/bash
# (a) cold vs ControlMaster-warm `ssh true`, N=20 each; counts sshd log lines per case.
D=/work/ssh-research; N=${N:-20}
S="ip netns exec sshr-c ssh -F $D/client.cfg"
count() { grep -c "$1" $D/log/sshd_${2:-a}.log; }
run() { # label host
  local j0=$(count 'Connection from' j) s0=$(count 'Starting session') c0=$(count 'Connection from') a0=$(count 'Accepted publickey') ts=()
  for i in $(seq $N); do t0=$(date +%s%N); if [ $2 = nohost ]; then ip netns exec sshr-c true; else $S $2 true; fi; t1=$(date +%s%N); ts+=($(( (t1-t0)/1000 ))); done
  local med=$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END{print (a[int((NR+1)/2)]+a[int(NR/2)+1])/2/1000}')
  local mn=$(printf '%s\n' "${ts[@]}" | sort -n | head -1) mx=$(printf '%s\n' "${ts[@]}" | sort -n | tail -1)
  echo "$1: N=$N median=${med}ms min=$((mn/1000))ms max=$((mx/1000))ms tcp_conns=$(( $(count 'Connection from')-c0 )) auths=$(( $(count 'Accepted publickey')-a0 )) sessions=$(( $(count 'Starting session')-s0 )) jump_tcp_conns=$(( $(count 'Connection from' j)-j0 ))"
}
$S -O exit target-mux 2>/dev/null; $S -O exit via-jump-mux 2>/dev/null
run baseline-netns-exec-true-only nohost
run cold target
$S target-mux true   # open the master (not timed)
run warm-mux target-mux
run cold-jump via-jump
$S via-jump-mux true
run warm-mux-jump via-jump-mux
