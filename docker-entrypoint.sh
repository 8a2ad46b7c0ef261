#!/usr/bin/env bash
# production_control container entrypoint.
#
#   docker-entrypoint.sh [all|web|cron]   start the web app, cron, or both (default: all)
#   docker-entrypoint.sh job NAME         run one cron job (what the crontab calls)
#   docker-entrypoint.sh CMD...           run any other command (e.g. python, bash)
#
# Logs: the web app to /var/log/webapp.log, cron jobs to /var/log/cron.log, both
# also to the container's stdout (`docker logs`). SIGTERM stops everything cleanly,
# letting a running cron job finish. If the web app or cron dies, the container
# exits non-zero so the restart policy acts.
set -euo pipefail

APP_USER=app
RUN_DIR=/run/production-control
ENV_FILE=$RUN_DIR/env
LOCK_DIR=$RUN_DIR/locks
WEB_LOG=/var/log/webapp.log
CRON_LOG=/var/log/cron.log
CRON_FILE=/etc/cron.d/production-control
# uvicorn gets 5 s to finish requests, then a running job up to this many: both
# within compose's 10 s stop grace period.
STOP_WAIT_FOR_JOBS=${STOP_WAIT_FOR_JOBS:-4}
# /var/log is a bounded tmpfs: a file log larger than this is cut to its newer half.
LOG_FILE_MAX_KB=${LOG_FILE_MAX_KB:-8192}

say() { printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { say "error: $*" >&2; exit 1; }

as_app() { # run a command as the unprivileged app user
  if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid="$APP_USER" --regid="$APP_USER" --init-groups --inh-caps=-all -- "$@"
  fi
  exec "$@"
}

owned_by_app() { # owned_by_app MODE PATH...: chmod before chown, so no CAP_FOWNER is needed
  local mode=$1; shift
  chmod "$mode" "$@"
  chown "$APP_USER:$APP_USER" "$@"
}

prepare() {
  [ "$(id -u)" = 0 ] || return 0   # non-root (role web under `user:`): nothing to prepare
  mkdir -p "$RUN_DIR" "$LOCK_DIR"
  chmod 0755 "$RUN_DIR"
  owned_by_app 0750 "$LOCK_DIR"
  # webapp.log is written by the entrypoint's tee (root), cron.log by the jobs (app);
  # both world-readable, so neither side needs CAP_DAC_OVERRIDE.
  touch "$WEB_LOG" "$CRON_LOG"
  chmod 0644 "$WEB_LOG"
  owned_by_app 0644 "$CRON_LOG"
  local data=${DATA_DIR:-/data}
  # A fresh volume may belong to root; fix it once (and leave a read-only one alone).
  if [ -d "$data" ] && [ "$(stat -c %U "$data")" != "$APP_USER" ]; then chown "$APP_USER:$APP_USER" "$data"; fi
  # cron starts jobs with an empty environment: save ours for the `job` role.
  (umask 077; export -p | grep -vE '^declare -x (HOME|PWD|OLDPWD|SHLVL|_)=' >"$ENV_FILE")
  chown "$APP_USER:$APP_USER" "$ENV_FILE"
  trim_logs &
  trim_pid=$!
}

CRON_FORM="give five cron fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'"

# cron_value FIELD TEXT: the number TEXT stands for in field FIELD (0-4): digits, or a month/weekday
# name; nothing (status 1) for anything else or a value out of the field's bounds.
cron_value() {
  local lows=(0 0 1 1 0) highs=(59 23 31 12 7) months=(jan feb mar apr may jun jul aug sep oct nov dec)
  local days=(sun mon tue wed thu fri sat) field=$1 text=${2,,} value="" i
  if [[ $text =~ ^[0-9]{1,2}$ ]]; then
    value=$((10#$text))
  elif [ "$field" = 3 ]; then
    for i in "${!months[@]}"; do [ "${months[i]}" = "$text" ] && value=$((i + 1)); done
  elif [ "$field" = 4 ]; then
    for i in "${!days[@]}"; do [ "${days[i]}" = "$text" ] && value=$i; done
  fi
  [ -n "$value" ] && [ "$value" -ge "${lows[field]}" ] && [ "$value" -le "${highs[field]}" ] && echo "$value"
}

# check_cron_schedule SCHEDULE: five fields of *, numbers or names within each field's bounds, ranges,
# lists and /steps; nothing else. A newline (or an awk escape such as \n) would add a crontab line run as root.
check_cron_schedule() {
  local LC_ALL=C schedule=$1 names=(minute hour day-of-month month day-of-week) fields items item i low high
  local item_form='^(\*|([0-9]{1,2}|[a-zA-Z]{3})(-([0-9]{1,2}|[a-zA-Z]{3}))?)(/[0-9]{1,2})?$'
  [[ $schedule != *[![:print:]]* ]] || die "CRON_SCHEDULE holds a control or non-ASCII character (a newline or tab?): $CRON_FORM"
  read -r -a fields <<<"$schedule"
  [ "${#fields[@]}" -eq 5 ] || die "CRON_SCHEDULE has ${#fields[@]} fields, not 5: $CRON_FORM"
  for i in 0 1 2 3 4; do
    [[ ${fields[i]} =~ ^[^,].*[^,]$|^[^,]$ && ${fields[i]} != *,,* ]] || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' is not valid: $CRON_FORM"
    IFS=, read -r -a items <<<"${fields[i]}"
    for item in "${items[@]}"; do
      [[ $item =~ $item_form ]] || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' is not valid: $CRON_FORM"
      [[ ${BASH_REMATCH[5]} != /0 && ${BASH_REMATCH[5]} != /00 ]] || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' has a step of 0: $CRON_FORM"
      [ "${BASH_REMATCH[1]}" = "*" ] && continue
      low=$(cron_value "$i" "${BASH_REMATCH[2]}") || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' is out of bounds: $CRON_FORM"
      high=$low
      if [ -n "${BASH_REMATCH[4]}" ]; then
        high=$(cron_value "$i" "${BASH_REMATCH[4]}") || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' is out of bounds: $CRON_FORM"
      fi
      [ "$low" -le "$high" ] || die "CRON_SCHEDULE's ${names[i]} field '${fields[i]}' is a range that runs backwards: $CRON_FORM"
    done
  done
}

install_crontab() {
  local schedule=${CRON_SCHEDULE:-}
  [ -z "$schedule" ] || check_cron_schedule "$schedule"
  # ENVIRON, not awk -v: -v would turn backslash escapes into characters.
  SCHEDULE="$schedule" awk '
    BEGIN { sched = ENVIRON["SCHEDULE"] }
    /^[[:space:]]*(#|$)/ { print; next }
    sched != "" { n = split($0, f, /[[:space:]]+/); line = sched; for (i = 6; i <= n; i++) line = line " " f[i]; print line; next }
    { print }' /etc/production-control/crontab >"$CRON_FILE"
  chmod 0644 "$CRON_FILE"
}

trim_log() { # trim_log FILE: beyond LOG_FILE_MAX_KB, keep only the newer half (writers append: they go on)
  local file=$1 size
  size=$(stat -c %s "$file" 2>/dev/null) || return 0
  [ "$size" -gt $((LOG_FILE_MAX_KB * 1024)) ] || return 0
  tail -c $((LOG_FILE_MAX_KB * 512)) "$file" >"$file.trim" && cat "$file.trim" >"$file"
  rm -f "$file.trim"
}

trim_logs() { # every 30 s, for the container's life (not supervised: it never stops the container)
  while sleep 30; do trim_log "$WEB_LOG"; trim_log "$CRON_LOG"; done
}

run_job() { # run one cron job as the app user, with the container environment, never overlapping
  local name=${1:?usage: docker-entrypoint.sh job NAME}
  if [ "$(id -u)" = 0 ]; then  # by hand (docker compose exec app docker-entrypoint.sh job NAME)
    exec setpriv --reuid="$APP_USER" --regid="$APP_USER" --init-groups --inh-caps=-all -- "$0" job "$name"
  fi
  # JOB_BY_HAND=1 (`invoke run-job`): the output also goes to the caller, and a run
  # refused because the previous one still holds the lock exits 75 instead of 0.
  local by_hand=${JOB_BY_HAND:-}
  # shellcheck disable=SC1090
  [ -r "$ENV_FILE" ] && . "$ENV_FILE"
  local rc=0
  if [ -n "$by_hand" ]; then
    set +e
    run_locked "$name" 2>&1 | tee -a "$CRON_LOG"
    rc=${PIPESTATUS[0]}
    set -e
  else
    exec >>"$CRON_LOG" 2>&1
    run_locked "$name" || rc=$?
  fi
  if [ "$rc" = 75 ]; then
    say "job $name skipped: the previous run is still going"
    [ -n "$by_hand" ] && return 75
    return 0
  fi
  return "$rc"
}

run_locked() { flock --nonblock --conflict-exit-code 75 "$LOCK_DIR/$1.lock" python -m production_control.jobs "$1"; }

pids=()
stopping=0
on_term() {
  stopping=1
  say "stopping (signal received)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}

wait_for_jobs() { # let a running cron job finish its transaction
  local lock
  for lock in "$LOCK_DIR"/*.lock; do
    [ -e "$lock" ] || continue
    flock --wait "$STOP_WAIT_FOR_JOBS" "$lock" true || say "job lock $lock still held after ${STOP_WAIT_FOR_JOBS}s"
  done
}

start_web() {
  (as_app uvicorn production_control.web:app --host 0.0.0.0 --port "${PORT:-8000}" \
     --proxy-headers --timeout-graceful-shutdown 5) > >(tee -a "$WEB_LOG") 2>&1 &
  pids+=($!); web_pid=$!
  say "web app started (pid $web_pid, port ${PORT:-8000})"
}

start_cron() {
  [ "$(id -u)" = 0 ] || die "the cron role needs root to start cron (jobs still run as '$APP_USER')"
  install_crontab
  cron -f &
  pids+=($!); cron_pid=$!
  tail -n 0 -F "$CRON_LOG" 2>/dev/null &
  tail_pid=$!
  say "cron started (pid $cron_pid, schedule ${CRON_SCHEDULE:-from crontab})"
}

supervise() {
  trap on_term TERM INT
  local rc=0
  while :; do
    rc=0; wait -n "${pids[@]}" || rc=$?
    [ "$stopping" = 1 ] && break
    say "a process exited (status $rc); stopping the container so its restart policy acts"
    stopping=2
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    break
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  wait_for_jobs
  [ -n "${tail_pid:-}" ] && kill "$tail_pid" 2>/dev/null || true
  [ -n "${trim_pid:-}" ] && kill "$trim_pid" 2>/dev/null || true
  if [ "$stopping" = 1 ]; then say "stopped cleanly"; exit 0; fi
  [ "$rc" = 0 ] && rc=1
  exit "$rc"
}

# Sourced (the unit tests of check_cron_schedule): define the functions only.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

role=${1:-all}
case "$role" in
  all)  prepare; start_cron; start_web; supervise ;;
  web)  prepare; start_web; supervise ;;
  cron) prepare; start_cron; supervise ;;
  job)  shift; run_job "$@" ;;
  *)    exec "$@" ;;
esac
