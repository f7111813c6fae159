#!/usr/bin/env bash
# `make run`: demo data, then web server + Celery worker (+ SMTP sink) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# DEBUG on: the development keys kept in var/ stand in for SECRET_KEY and FIELD_ENCRYPTION_KEY
# (generated on first run). With DEBUG=0 both must be set, as in production.
export DEBUG=${DEBUG:-1}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${EMAIL_URL:-}" ]; then
  # A local SMTP server that prints each mail: no mail leaves this machine.
  export EMAIL_URL=smtp://127.0.0.1:1025
  $BIN/python -m aiosmtpd -n -c aiosmtpd.handlers.Debugging -l 127.0.0.1:1025 &
  pids+=($!)
fi

# SMS and push without a provider configured: written to var/outbox.jsonl, nothing leaves
export NOTIFY_DEV_TRANSPORT=${NOTIFY_DEV_TRANSPORT:-file}

$BIN/python manage.py migrate --noinput
$BIN/python manage.py demo_setup --base-url "http://$HOST:$PORT"
# -B: the beat that runs the sweep (pending work lives in the database)
$BIN/celery -A notify worker -B --loglevel INFO --concurrency 2 &
pids+=($!)
$BIN/python manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
wait -n "${pids[@]}"
