#!/bin/sh
# Starts tor with a control password hashed at start from TOR_CONTROL_PASSWORD (never stored in the image).
set -eu
if [ -z "${TOR_CONTROL_PASSWORD:-}" ]; then
  echo "tor-proxy: set TOR_CONTROL_PASSWORD (docker compose reads it from .env)" >&2
  exit 1
fi
hashed=$(tor --quiet --hash-password "$TOR_CONTROL_PASSWORD" | tail -n 1)
exec tor -f "${TORRC:-/etc/tor/torrc}" --HashedControlPassword "$hashed" "$@"
