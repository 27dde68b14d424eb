#!/usr/bin/env bash
# Make sure Redis answers at VF_REDIS_URL (default 127.0.0.1:6379): start a local
# redis-server (no persistence, PID in logs/redis.pid) when none listens.
#
# Memory is bounded (VF_REDIS_MAXMEMORY, default 512mb) with the volatile-lru policy: at the
# bound Redis evicts keys that have a TTL (per-session state, cancel markers, replies) least
# recently used first, and never the work streams and consumer groups (no TTL), so queued work
# is not lost. noeviction would instead refuse every write, health beats included, and stop
# the whole fleet; allkeys-* policies could drop a work stream with its pending entries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VF_VENV:-.venv}/bin/python
URL=${VF_REDIS_URL:-redis://127.0.0.1:6379/0}
up() { "$PY" -c "import redis; redis.Redis.from_url('$URL', socket_connect_timeout=1).ping()" 2>/dev/null; }
up && exit 0
if command -v redis-server >/dev/null; then
  mkdir -p logs
  echo "==> starting a local redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --maxmemory "${VF_REDIS_MAXMEMORY:-512mb}" --maxmemory-policy volatile-lru \
    --pidfile "$PWD/logs/redis.pid" --logfile "$PWD/logs/redis.log"
  for _ in $(seq 50); do up && exit 0; sleep 0.1; done
fi
echo "error: Redis is not reachable at $URL." >&2
echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set VF_REDIS_URL in .env." >&2
exit 1
