#!/bin/bash
# (d) server side of a running session dies / hangs mid-command. Client runs `sleep 25` (marker).
D=/work/ssh-research; N="ip netns exec sshr-c"
case1() { # label  action(kill9|term|stop|linkdown)  extra ssh opts...
  local label=$1 act=$2; shift 2
  local mark=$((RANDOM%50+25))
  t0=$(date +%s%N)
  timeout 30 $N ssh -F $D/client.cfg -o LogLevel=INFO "$@" target "sleep $mark; echo finished" > $D/run/d.out 2>&1 &
  local cpid=$!
  sleep 1.5
  local child=$(pgrep -f "^bash -c sleep $mark; echo finished"); while ! ps -o args= -p $child | grep -q "^sshd:"; do child=$(ps -o ppid= -p $child | tr -d " "); done
  local tree=$(ps -o pid=,ppid=,args= --ppid $child -p $child | tr '\n' ';')
  tk=$(date +%s%N)
  case $act in
    kill9) kill -9 $child;;
    term)  kill -TERM $child;;
    stop)  kill -STOP $child;;
    linkdown) ip -n sshr-a link set sshr-ac down;;
  esac
  wait $cpid; rc=$?
  t1=$(date +%s%N)
  echo "=== $label ($act sshd child pid $child) opts: $*"
  echo "    tree: $tree"
  sed 's/^/    client: /' $D/run/d.out
  echo "    rc=$rc noticed_after=$(( (t1-tk)/1000000 ))ms (124 = still hanging at timeout 30s)"
  [ $act = stop ] && { kill -CONT $child; kill -9 $child; }
  [ $act = linkdown ] && ip -n sshr-a link set sshr-ac up
  pkill -f "^sleep $mark\$"; sleep 0.5
}
case1 kill9-child kill9
case1 term-child term
case1 stop-child stop
case1 stop-child-alive stop -o ServerAliveInterval=2 -o ServerAliveCountMax=2
case1 linkdown linkdown
case1 linkdown-alive linkdown -o ServerAliveInterval=2 -o ServerAliveCountMax=2
