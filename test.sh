#!/usr/bin/env bash
# Run the test suite: installs what is missing (scripts/setup.sh --dev), makes sure
# Redis listens on 127.0.0.1:6379, then runs pytest. Extra arguments go to pytest,
# e.g. ./test.sh -k gateway -x
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --dev
scripts/ensure_redis.sh
exec "${VF_VENV:-.venv}/bin/python" -m pytest "$@"
