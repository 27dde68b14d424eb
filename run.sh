#!/usr/bin/env bash
# Set up and run the whole fleet on this machine, without Docker.
#
#   ./run.sh             install what is missing, start Redis if needed, start every
#                        service in the background, wait until healthy, print a URL and a token
#   ./run.sh --no-setup  skip the install step (already done)
#   ./kill_all.sh        stop everything this script started
#
# supervisord runs the services and restarts a crashed one (logs/supervisord.log says when).
# Each process writes logs/<name>.log and logs/<name>.pid (VF_RUN_DIR picks another folder). Scale a worker kind with
# VF_RUN_STT=2 (likewise VF_RUN_LLM, VF_RUN_TTS, VF_RUN_TOOLS); VF_RUN_WYOMING=1 adds the Wyoming adapter.
set -euo pipefail
cd "$(dirname "$0")"

SETUP=1
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (see ./run.sh --help)" >&2; exit 2 ;;
  esac
done

VENV=${VF_VENV:-.venv}
PY="$VENV/bin/python"
LOGS=${VF_RUN_DIR:-logs}   # PID and log files (tests use a folder of their own)
mkdir -p "$LOGS"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

[ "$SETUP" = 1 ] && scripts/setup.sh

# --- settings: a production secret is generated, never a baked-in default ----
touch .env
chmod 600 .env  # it holds the signing secret: readable by its owner only
if ! grep -q '^VF_GATEWAY_JWT_SECRET=' .env && [ -z "${VF_GATEWAY_JWT_SECRET:-}" ]; then
  say "generating a JWT secret into .env"
  echo "VF_GATEWAY_JWT_SECRET=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" >> .env
fi
# Like the services themselves: the environment wins over .env.
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  key=${line%%=*}
  [ -z "${!key+x}" ] && export "$key=${line#*=}"
done < .env
REDIS_URL=${VF_REDIS_URL:-redis://127.0.0.1:6379/0}
PORT=${VF_GATEWAY_PORT:-8080}
HOST=${VF_GATEWAY_HOST:-127.0.0.1}

# --- Redis ------------------------------------------------------------------
VF_REDIS_URL=$REDIS_URL scripts/ensure_redis.sh

# --- services, under supervisord ------------------------------------------------
# supervisord (from the [fleet] extra) owns the service processes: a worker that crashes is
# restarted (one that dies within startsecs of starting is retried with a growing delay, then
# given up as FATAL), and every exit and restart is logged in $LOGS/supervisord.log.
RUN=$(cd "$LOGS" && pwd)
CONF="$RUN/supervisord.conf"
CTL=("$VENV/bin/supervisorctl" -c "$CONF")
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
programs=(gateway)
for kind in stt llm tts tools; do
  var="VF_RUN_${kind^^}"
  for i in $(seq 1 "${!var:-1}"); do programs+=("$kind-$i"); done
done
# The Wyoming adapter (Home Assistant's speech-to-text, text-to-speech and wake word provider): VF_RUN_WYOMING=1.
[ "${VF_RUN_WYOMING:-0}" = 1 ] && programs+=(wyoming-1)
module_of() {
  case ${1%-*} in
    gateway) echo "gateway serve" ;; stt) echo vad_stt_worker ;; llm) echo llm_orchestrator ;;
    tts) echo tts_worker ;; tools) echo tools_worker ;; wyoming) echo wyoming_adapter ;;
  esac
}
{
  cat <<CONF
; Written by ./run.sh; stopped by ./kill_all.sh.
[unix_http_server]
file=$RUN/supervisor.sock
chmod=0700

[supervisord]
logfile=$RUN/supervisord.log
pidfile=$RUN/supervisord.pid
directory=$PWD
identifier=voicefleet-$RUN

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$RUN/supervisor.sock
CONF
  for name in "${programs[@]}"; do
    cat <<CONF

[program:$name]
command=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") -m $(module_of "$name")
directory=$PWD
autostart=true
autorestart=true
startsecs=5
startretries=5
stopsignal=TERM
stopwaitsecs=10
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$RUN/$name.log
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=2
CONF
  done
} > "$CONF"

# One PID file per service, for scripts that look (the PID changes when supervisord restarts one).
# supervisorctl status exits non-zero while any program is not RUNNING: read its output only.
status() { "${CTL[@]}" status 2>/dev/null || true; }
write_pids() {
  local name pid
  for name in "${programs[@]}"; do
    pid=$("${CTL[@]}" pid "$name" 2>/dev/null || true)
    if [[ "$pid" =~ ^[1-9][0-9]*$ ]]; then echo "$pid" > "$RUN/$name.pid"; fi
  done
}
say "starting the fleet under supervisord (logs in $LOGS/)"
if alive "$RUN/supervisord.pid"; then
  "${CTL[@]}" update >/dev/null
  "${CTL[@]}" start all >/dev/null || true
else
  "$VENV/bin/supervisord" -c "$CONF"
fi
for _ in $(seq 50); do "${CTL[@]}" pid >/dev/null 2>&1 && break; sleep 0.1; done
status | sed 's/^/    /'

# --- wait until healthy -------------------------------------------------------------
say "waiting for every service to load its models and report ready"
URL="http://$HOST:$PORT"
for _ in $(seq 600); do
  if "$PY" - "$URL" <<'PYEOF' 2>/dev/null; then break; fi
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/health", timeout=2))
sys.exit(0 if health.get("ready") else 1)
PYEOF
  write_pids
  fatal=$(status | awk '$2 == "FATAL" {print $1}')
  if [ -n "$fatal" ]; then
    for name in $fatal; do
      echo "error: $name kept stopping while starting; the end of $LOGS/$name.log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2
    done
    exit 1
  fi
  sleep 0.5
done
"$PY" - "$URL" <<'PYEOF' || { echo "error: the fleet did not become ready in 5 minutes; see $LOGS/" >&2; exit 1; }
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/health", timeout=2))
for name, s in health["services"].items():
    print(f"    {name:8} {s['ready']}/{s['processes']} ready")
sys.exit(0 if health.get("ready") else 1)
PYEOF
write_pids

say "file search covers (add folders with VF_TOOLS_SEARCH_DIRS in .env, comma-separated):"
FOLDERS=$("$PY" -m tools_worker folders 2>/dev/null || true)
if [ -n "$FOLDERS" ]; then sed 's/^/    /' <<<"$FOLDERS"; else echo "    nothing (file search is off)"; fi

TOKEN=$("$PY" -m gateway token --sub "${USER:-me}" --ttl 86400 | tail -n 1)
say "the assistant is running"
cat <<INFO
    page:     $URL/?token=$TOKEN
    API docs: $URL/docs
    talk:     $PY -m audio_client --gateway ws://$HOST:$PORT --token \$TOKEN
    OpenAI:   base_url $URL/v1, api_key \$TOKEN
    token:    $TOKEN
    stop:     ./kill_all.sh
INFO
