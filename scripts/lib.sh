# Shared by the scripts in this folder: source it from the repository root (`. scripts/lib.sh`).

# Installs Debian's tor (tor and tor-gencert: the test bed needs both) with apt-get when missing.
ensure_tor() {
  if command -v tor >/dev/null 2>&1 && command -v tor-gencert >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing tor (apt-get)"
    # The package must not start a system tor: it would join the public Tor network. A policy-rc.d that
    # refuses every service start (Debian's documented switch) holds while installing.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tor >/dev/null
    if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
  else
    echo "tor is not installed: run 'sudo apt-get install tor' (the test bed needs it)" >&2
    exit 1
  fi
}

# Installs an optional-dependency group of pyproject.toml (e.g. `bench`) into .venv, pinned by
# constraints.txt, unless MODULE already imports.
ensure_extra() {
  local extra=$1 module=$2
  if ! .venv/bin/python -c "import $module" >/dev/null 2>&1; then
    echo "==> installing the '$extra' extra"
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extra]"
  fi
}

# Installs Debian's chromium with apt-get when missing: the UI's browser tests drive it through Playwright
# (launched with this executable; Playwright downloads no browser of its own).
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed: run 'sudo apt-get install chromium' (the UI's browser tests need it)" >&2
    exit 1
  fi
}
