#!/usr/bin/env bash
# Set up and run the whole fleet on this machine, without Docker.
#
#   ./run.sh             install what is missing, start Redis if needed, start every
#                        service in the background, wait until healthy, print a URL and a token
#   ./run.sh --no-setup  skip the install step (already done)
#   ./kill_all.sh        stop everything this script started
#
# Each process writes logs/<name>.log and logs/<name>.pid (VF_RUN_DIR picks another folder). Scale a worker kind with
# VF_RUN_STT=2 (likewise VF_RUN_LLM, VF_RUN_TTS, VF_RUN_TOOLS).
set -euo pipefail
cd "$(dirname "$0")"

SETUP=1
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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

# --- services -----------------------------------------------------------------
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
start() {  # start NAME MODULE [ARGS...]
  local name=$1; shift
  if alive "$LOGS/$name.pid"; then
    echo "    $name already running (pid $(cat "$LOGS/$name.pid"))"; return
  fi
  nohup "$PY" -m "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! > "$LOGS/$name.pid"
  echo "    started $name (pid $!)"
}
say "starting the fleet (logs in $LOGS/)"
start gateway gateway serve
for kind in stt llm tts tools; do
  case $kind in
    stt) module=vad_stt_worker ;; llm) module=llm_orchestrator ;;
    tts) module=tts_worker ;; tools) module=tools_worker ;;
  esac
  var="VF_RUN_${kind^^}"
  for i in $(seq 1 "${!var:-1}"); do start "$kind-$i" "$module"; done
done

# --- wait until healthy -------------------------------------------------------------
say "waiting for every service to load its models and report ready"
URL="http://$HOST:$PORT"
for _ in $(seq 600); do
  if "$PY" - "$URL" <<'PYEOF' 2>/dev/null; then break; fi
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/health", timeout=2))
sys.exit(0 if health.get("ready") else 1)
PYEOF
  for pidfile in "$LOGS"/*.pid; do
    name=$(basename "$pidfile" .pid)
    if [ "$name" != redis ] && ! alive "$pidfile"; then
      echo "error: $name stopped while starting; the end of $LOGS/$name.log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2
      exit 1
    fi
  done
  sleep 0.5
done
"$PY" - "$URL" <<'PYEOF' || { echo "error: the fleet did not become ready in 5 minutes; see $LOGS/" >&2; exit 1; }
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/health", timeout=2))
for name, s in health["services"].items():
    print(f"    {name:8} {s['ready']}/{s['processes']} ready")
sys.exit(0 if health.get("ready") else 1)
PYEOF

say "file search covers (add folders with VF_TOOLS_SEARCH_DIRS in .env, comma-separated):"
FOLDERS=$("$PY" -m tools_worker folders 2>/dev/null || true)
if [ -n "$FOLDERS" ]; then sed 's/^/    /' <<<"$FOLDERS"; else echo "    nothing (file search is off)"; fi

TOKEN=$("$PY" -m gateway token --sub "${USER:-me}" --ttl 86400 | tail -n 1)
say "the assistant is running"
cat <<INFO
    page:     $URL/?token=$TOKEN
    API docs: $URL/docs
    talk:     $PY -m audio_client --gateway ws://$HOST:$PORT --token \$TOKEN
    token:    $TOKEN
    stop:     ./kill_all.sh
INFO
