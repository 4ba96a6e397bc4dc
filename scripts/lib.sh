# Shared by the scripts in this folder: source it from the repository root (`. scripts/lib.sh`).

# Installs Debian packages with apt-get as root, or says what to install and exits (WHY: what needs them).
# The packages must not start a system service (a system tor would join the public Tor network): a
# policy-rc.d that refuses every service start (Debian's documented switch) holds while installing.
apt_install() {
  local why=$1
  shift
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing $* (apt-get)"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
  else
    echo "$* not installed: run 'sudo apt-get install $*' ($why)" >&2
    exit 1
  fi
}

# Installs Debian's tor (tor and tor-gencert: the test bed needs both) when missing.
ensure_tor() {
  if command -v tor >/dev/null 2>&1 && command -v tor-gencert >/dev/null 2>&1; then
    return 0
  fi
  apt_install "the test bed needs it" tor
}

# Installs Debian's postgresql when its server programs are missing (the archive tests run a PostgreSQL of
# their own on loopback; the package's cluster is never started).
ensure_postgres() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    apt_install "the archive tests need it" postgresql
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
  if ! command -v chromium >/dev/null 2>&1; then
    apt_install "the UI's browser tests need it" chromium
  fi
}
