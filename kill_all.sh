#!/usr/bin/env bash
# Stop exactly the processes ./run.sh started: supervisord and the services it runs, then
# what else left a PID in logs/*.pid (Redis, when run.sh started it; VF_RUN_DIR picks another folder).
# Safe to run twice: a missing or stale PID file is skipped.
set -uo pipefail
cd "$(dirname "$0")"
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { sed -n '2,4p' "$0"; exit 0; }
RUN=${VF_RUN_DIR:-logs}

ours() {  # is PID still the process we started (not a recycled PID)?
  local cmd
  cmd=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
  case "$cmd" in *python*|*supervisord*|*redis-server*) return 0 ;; *) return 1 ;; esac
}

# supervisord first: stopping it stops its services (TERM, then KILL after stopwaitsecs), and
# nothing restarts them behind our back.
if [ -f "$RUN/supervisord.pid" ]; then
  sup=$(cat "$RUN/supervisord.pid")
  if [ -n "$sup" ] && kill -0 "$sup" 2>/dev/null && ours "$sup"; then
    echo "stopping supervisord (pid $sup) and its services"
    kill -TERM "$sup" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$RUN/supervisord.pid" "$RUN/supervisor.sock"
fi

pids=()
for pidfile in "$RUN"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ours "$pid"; then
    echo "stopping $(basename "$pidfile" .pid) (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid")
  fi
  rm -f "$pidfile"
done
# Give them 10 s to finish cleanly, then insist.
for _ in $(seq 100); do
  left=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
  [ ${#left[@]} -eq 0 ] && break
  sleep 0.1
done
for pid in "${left[@]:-}"; do
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "killing pid $pid"; kill -KILL "$pid"; }
done
echo "fleet stopped"
