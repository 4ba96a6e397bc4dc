#!/bin/bash
# Healthy when Tor answers on its control port and has bootstrapped to 100%.
set -eu
exec 3<>"/dev/tcp/127.0.0.1/${TOR_CONTROL_PORT:-9051}"
password=${TOR_CONTROL_PASSWORD//\\/\\\\}
password=${password//\"/\\\"}
printf 'AUTHENTICATE "%s"\r\nGETINFO status/bootstrap-phase\r\nQUIT\r\n' "$password" >&3
grep -q 'PROGRESS=100' <&3
