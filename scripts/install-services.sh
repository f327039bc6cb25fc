#!/usr/bin/env bash
# install-services.sh — make Redis and PostgreSQL (with pgvector) available on
# 127.0.0.1 so the sos test suite can run against real services.
# Debian/Ubuntu only. Idempotent: a second run only checks and changes nothing.
#
# What it does (one log line per step):
#   1. Redis: installs `redis-server` if missing, starts it if `redis-cli ping`
#      fails (systemctl when systemd is PID 1, else a non-persistent
#      `redis-server --daemonize yes` on 127.0.0.1:6379).
#   2. PostgreSQL: installs `postgresql` if no server is installed, creates a
#      cluster if none exists, starts it (systemctl or pg_ctlcluster).
#   3. pgvector: if not installed for that major, installs
#      `postgresql-<major>-pgvector` when apt has it (e.g. Ubuntu 24.04);
#      otherwise builds it from the next release's Debian/Ubuntu *source*
#      package (bookworm -> trixie, jammy -> noble) against
#      postgresql-server-dev-<major>. The deb-src entry is derived from the
#      machine's own apt sources (the main archive entry), written to
#      /etc/apt/sources.list.d/sos-pgvector-src.sources (deb-src only, so no
#      binary is ever upgraded from that suite) and removed again on exit.
#   0. tmux, zsh, fish; python3, make and g++ for the native modules (better-sqlite3,
#      node-pty), and npm's nodedir pointed at the running Node.js's headers when found;
#      Debian's python3-redis, -pytest, -pytest-asyncio, -jsonschema and -nacl for the upstream
#      SOS wire test (test/integration/upstream.wire.test.ts), and python3-pydantic when the
#      release has pydantic 2 (bookworm has 1.10: there the test uses another python3's
#      pydantic 2 of the same version, and fails under CI=true without one).
#   0. promtool, for the `/metrics` tests (`promtool check metrics`): Debian and Ubuntu ship it
#      only inside the `prometheus` package, which would also install and start a Prometheus
#      server. So the package is fetched with `apt-get download` (from the machine's own apt
#      sources), unpacked with `dpkg-deb -x` in a temp dir, and only usr/bin/promtool is copied
#      to /usr/local/bin/promtool.
#   4. Ensures role and database `sos_test` exist, runs
#      `CREATE EXTENSION IF NOT EXISTS vector` there and prints its version.
# `apt-get update` runs at most once, and only when something must be installed.
#
# Authentication: nothing in pg_hba.conf is changed. The script administers
# through the local socket as the postgres superuser, creates a login role
# `sos_test` (password `sos_test`) owning database `sos_test`, and the tests
# connect as postgres://sos_test:sos_test@127.0.0.1:5432/sos_test (override
# with SOS_TEST_DATABASE_URL). Meant for development and CI machines.
#
# Environment:
#   SOS_SKIP_REDIS=1       skip everything Redis
#   SOS_SKIP_POSTGRES=1    skip everything PostgreSQL/pgvector
#   PGVECTOR_SUITE=<suite> suite whose pgvector source package is built when no
#                          binary package exists (default: trixie on bookworm,
#                          noble on jammy)
set -euo pipefail
trap 'echo "ERROR: $0 failed at line $LINENO" >&2' ERR

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
have_systemd() { [ -d /run/systemd/system ]; }
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
APT_UPDATED=0
apt_update_once() { [ "$APT_UPDATED" = 1 ] || { log "apt-get update"; $SUDO apt-get update -qq; APT_UPDATED=1; }; }
apt_install() {
  apt_update_once; log "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
wait_for() { local i; for i in $(seq 1 20); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

SRC_LIST=/etc/apt/sources.list.d/sos-pgvector-src.sources; TMP=""; PROM_TMP=""
cleanup() {
  [ -z "$TMP" ] || rm -rf "$TMP"; [ -z "$PROM_TMP" ] || rm -rf "$PROM_TMP"
  [ ! -e "$SRC_LIST" ] || $SUDO rm -f "$SRC_LIST"
}
trap cleanup EXIT

. /etc/os-release
CODENAME="${VERSION_CODENAME:-}"
case "$CODENAME" in bookworm) DEF_SUITE=trixie ;; jammy) DEF_SUITE=noble ;; *) DEF_SUITE="" ;; esac
SUITE="${PGVECTOR_SUITE:-$DEF_SUITE}"
COMPONENTS=main; [ "${ID:-}" = ubuntu ] && COMPONENTS="main universe"

# Print "<uri> [<keyring>]" of the apt entry serving suite $CODENAME itself
# (the main archive; -security/-updates suites don't match).
archive_entry() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && [ "$f" != "$SRC_LIST" ] || continue
    awk -v s="$CODENAME" 'BEGIN { RS = ""; FS = "\n" } {
      t = u = su = k = ""; on = 1
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^[ \t]*#/ || !(n = index($i, ":"))) continue
        key = tolower(substr($i, 1, n - 1)); v = substr($i, n + 1); gsub(/^[ \t]+|[ \t]+$/, "", v)
        if (key == "types") t = v; else if (key == "uris") u = v; else if (key == "suites") su = v
        else if (key == "signed-by") k = v; else if (key == "enabled" && tolower(v) == "no") on = 0
      }
      if (on && (" " t " ") ~ / deb / && (" " su " ") ~ (" " s " ")) { split(u, a, " "); print a[1], k; exit }
    }' "$f"
  done
  [ -r /etc/apt/sources.list ] && awk -v s="$CODENAME" '$1 == "deb" {
    sub(/^deb[ \t]+/, ""); k = ""
    if ($0 ~ /^\[/) { o = substr($0, 2, index($0, "]") - 2); $0 = substr($0, index($0, "]") + 1)
      if (match(o, /signed-by=[^ ]+/)) k = substr(o, RSTART + 10, RLENGTH - 10) }
    if ($2 == s) { print $1, k; exit }
  }' /etc/apt/sources.list
  return 0
}

# ---------------------------------------------------------------- plan
# Decided first: the deb-src entry must exist before the (single) apt-get update.
server_major() { printf '%s\n' /usr/lib/postgresql/*/bin/postgres | awk -F/ '$5 ~ /^[0-9]+$/ { print $5 }' | sort -n | tail -n1; }
vector_installed() { [ -f "/usr/share/postgresql/$1/extension/vector.control" ] && [ -f "/usr/lib/postgresql/$1/lib/vector.so" ]; }
PG_MAJOR="$(server_major)"
NEED_VECTOR=0
[ "${SOS_SKIP_POSTGRES:-}" = 1 ] || { [ -n "$PG_MAJOR" ] && vector_installed "$PG_MAJOR"; } || NEED_VECTOR=1
if [ "$NEED_VECTOR" = 1 ] && [ -n "$SUITE" ]; then
  read -r SRC_URI SRC_KEY < <(archive_entry | head -n1) || true
  [ -n "${SRC_URI:-}" ] || die "no apt entry for suite '$CODENAME' found to derive the deb-src URI from"
  log "pgvector: adding deb-src $SRC_URI $SUITE ($COMPONENTS) -> $SRC_LIST (removed on exit)"
  { printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n' "$SRC_URI" "$SUITE" "$COMPONENTS"
    if [ -n "${SRC_KEY:-}" ]; then printf 'Signed-By: %s\n' "$SRC_KEY"; fi; } | $SUDO tee "$SRC_LIST" >/dev/null
fi

# ---------------------------------------------------------------- terminal tools
# tmux for tmux sessions (and the lifecycle tests); zsh and fish so the completion tests run
# their scripts for real instead of skipping.
TOOLS=()
for tool in tmux zsh fish; do command -v "$tool" >/dev/null || TOOLS+=("$tool"); done
if [ ${#TOOLS[@]} -gt 0 ]; then apt_install "${TOOLS[@]}"; else log "tmux, zsh, fish: installed"; fi

# ---------------------------------------------------------------- native modules
# better-sqlite3 and node-pty compile from source whenever no prebuilt binary can be fetched
# (an offline machine, a Node.js without one): node-gyp needs python3, make, g++ and the headers
# of the running Node.js. With the headers on disk (Debian's nodejs ships /usr/include/node), npm
# is pointed at them so node-gyp never tries to download them.
BUILD=()
for pair in python3:python3 make:make g++:g++; do command -v "${pair%%:*}" >/dev/null || BUILD+=("${pair#*:}"); done
if [ ${#BUILD[@]} -gt 0 ]; then apt_install "${BUILD[@]}"; else log "python3, make, g++: installed"; fi
# ---------------------------------------------------------------- upstream SOS wire test
# Debian's packages only, for Debian's python3 (/usr/bin/python3).
PY=()
for p in python3-redis python3-pytest python3-pytest-asyncio python3-jsonschema python3-nacl; do installed "$p" || PY+=("$p"); done
if ! installed python3-pydantic; then
  [ ${#PY[@]} -eq 0 ] || apt_update_once
  PYDANTIC="$(apt-cache policy python3-pydantic 2>/dev/null | awk '/Candidate:/ { print $2 }')"
  case "$PYDANTIC" in
    2.*|[3-9].*) PY+=(python3-pydantic); installed python3-pydantic-settings || PY+=(python3-pydantic-settings) ;;
    *) log "python3-pydantic: ${PYDANTIC:-none} in apt, upstream needs 2.x (the wire test looks for another python3's)" ;;
  esac
fi
if [ ${#PY[@]} -gt 0 ]; then apt_install "${PY[@]}"; else log "python3 packages for the upstream wire test: installed"; fi
if command -v node >/dev/null && command -v npm >/dev/null; then
  NODE_PREFIX="$(dirname "$(dirname "$(node -p process.execPath)")")"
  NODEDIR="$(npm config get nodedir 2>/dev/null || true)"
  if [ -n "$NODEDIR" ] && [ "$NODEDIR" != undefined ] && [ "$NODEDIR" != null ]; then
    log "Node.js headers: npm builds against nodedir=$NODEDIR"
  elif [ -f "$NODE_PREFIX/include/node/node.h" ]; then
    log "Node.js headers: found in $NODE_PREFIX/include/node; npm config set nodedir $NODE_PREFIX (your user npmrc)"
    npm config set nodedir "$NODE_PREFIX"
  else
    log "Node.js headers: not found under $NODE_PREFIX/include/node; node-gyp will try to download them"
  fi
fi

# ---------------------------------------------------------------- promtool
# Only the checker, never the server: the package is unpacked aside, not installed.
if command -v promtool >/dev/null; then
  log "promtool: installed ($(promtool --version 2>&1 | head -n1))"
else
  apt_update_once
  PROM_TMP="$(mktemp -d)"
  if [ -z "$SUDO" ] && id _apt >/dev/null 2>&1; then chown _apt "$PROM_TMP"; fi  # lets apt download sandboxed
  log "promtool: apt-get download prometheus; copying its usr/bin/promtool to /usr/local/bin/promtool"
  (cd "$PROM_TMP" && apt-get download -qq prometheus) >/dev/null 2>&1 || die "apt-get download prometheus failed"
  DEB="$(find "$PROM_TMP" -maxdepth 1 -name 'prometheus_*.deb' | head -n1)"
  [ -n "$DEB" ] || die "apt-get download prometheus left no prometheus_*.deb"
  dpkg-deb -x "$DEB" "$PROM_TMP/root"
  [ -x "$PROM_TMP/root/usr/bin/promtool" ] || die "$(basename "$DEB") has no usr/bin/promtool"
  $SUDO install -m 0755 "$PROM_TMP/root/usr/bin/promtool" /usr/local/bin/promtool
  command -v promtool >/dev/null || die "promtool copied to /usr/local/bin but not found on PATH"
  log "promtool: $(promtool --version 2>&1 | head -n1)"
fi

# ---------------------------------------------------------------- Redis
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
if [ "${SOS_SKIP_REDIS:-}" = 1 ]; then
  log "Redis: skipped (SOS_SKIP_REDIS=1)"
else
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then log "Redis: installed"
  else apt_install redis-server redis-tools; fi
  if redis_up; then
    log "Redis: already answering PING on 127.0.0.1:6379"
  elif have_systemd; then
    log "Redis: starting via systemctl"; $SUDO systemctl enable --now redis-server
  else
    log "Redis: starting redis-server (no systemd; no persistence)"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for redis_up || die "Redis does not answer on 127.0.0.1:6379"
fi

# ---------------------------------------------------------------- PostgreSQL
if [ "${SOS_SKIP_POSTGRES:-}" = 1 ]; then
  log "PostgreSQL: skipped (SOS_SKIP_POSTGRES=1)"; exit 0
fi
if [ -n "$PG_MAJOR" ]; then log "PostgreSQL: server $PG_MAJOR installed"
else apt_install postgresql; PG_MAJOR="$(server_major)"; [ -n "$PG_MAJOR" ] || die "postgresql install gave no server"; fi

CLUSTER="$(pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v { print $2; exit }')"
if [ -n "$CLUSTER" ]; then log "PostgreSQL: cluster $PG_MAJOR/$CLUSTER exists"
else log "PostgreSQL: creating cluster $PG_MAJOR/main"; CLUSTER=main; $SUDO pg_createcluster "$PG_MAJOR" main >/dev/null; fi
PORT="$(pg_lsclusters -h | awk -v v="$PG_MAJOR" -v c="$CLUSTER" '$1 == v && $2 == c { print $3 }')"
[ "$PORT" = 5432 ] || die "cluster $PG_MAJOR/$CLUSTER listens on port $PORT, tests expect 5432"
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if pg_up; then
  log "PostgreSQL: already accepting connections on 127.0.0.1:5432"
elif have_systemd; then
  log "PostgreSQL: starting postgresql@$PG_MAJOR-$CLUSTER via systemctl"
  $SUDO systemctl enable --now postgresql; $SUDO systemctl start "postgresql@$PG_MAJOR-$CLUSTER"
else
  log "PostgreSQL: starting $PG_MAJOR/$CLUSTER via pg_ctlcluster (no systemd)"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" start
fi
wait_for pg_up || die "PostgreSQL does not accept connections on 127.0.0.1:5432"

# ---------------------------------------------------------------- pgvector
if [ "$NEED_VECTOR" = 0 ] || vector_installed "$PG_MAJOR"; then
  log "pgvector: already installed for PostgreSQL $PG_MAJOR"
else
  PKG="postgresql-$PG_MAJOR-pgvector"
  apt_update_once
  if [ -n "$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }')" ]; then
    apt_install "$PKG"
  else
    [ -n "$SUITE" ] || die "no $PKG package for '$CODENAME'; set PGVECTOR_SUITE to a suite with a pgvector source package"
    log "pgvector: no $PKG package; building from $SUITE source"
    DEPS=(); for p in "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev; do installed "$p" || DEPS+=("$p"); done
    [ ${#DEPS[@]} -eq 0 ] || apt_install "${DEPS[@]}"
    TMP="$(mktemp -d)"; BLOG="$TMP/build.log"
    if [ -z "$SUDO" ] && id _apt >/dev/null 2>&1; then chown _apt "$TMP"; fi  # lets apt download sandboxed
    (cd "$TMP" && apt-get source pgvector) >"$BLOG" 2>&1 || { tail -n 20 "$BLOG" >&2; die "apt-get source pgvector ($SUITE) failed"; }
    SRC_DIR="$(find "$TMP" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    log "pgvector: building $(basename "$SRC_DIR") with /usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
    MK=(make -C "$SRC_DIR" PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" OPTFLAGS="")
    { "${MK[@]}" && $SUDO "${MK[@]}" install; } >>"$BLOG" 2>&1 || { tail -n 20 "$BLOG" >&2; die "pgvector build failed"; }
  fi
  vector_installed "$PG_MAJOR" || die "pgvector still not installed for PostgreSQL $PG_MAJOR"
fi

# ---------------------------------------------------------------- test role + database
# Administration goes through the local socket as the postgres superuser (peer auth, the Debian
# default), so pg_hba.conf is never loosened. The tests log in over TCP as a password role that
# owns its database; the superuser pre-creates pgvector there (the extension is not "trusted").
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); else AS_PG=(sudo -u postgres); fi
pgsu() { PGOPTIONS="-c client_min_messages=warning" "${AS_PG[@]}" psql -p 5432 -v ON_ERROR_STOP=1 -Atq "$@"; }
pgsu -d postgres -c 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL as the postgres superuser over the local socket"
if [ "$(pgsu -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'sos_test'")" = 1 ]; then
  log "PostgreSQL: role sos_test exists"
else
  log "PostgreSQL: creating login role sos_test (password sos_test; for tests only)"
  pgsu -d postgres -c "CREATE ROLE sos_test LOGIN PASSWORD 'sos_test'"
fi
if [ "$(pgsu -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'sos_test'")" = 1 ]; then
  log "PostgreSQL: database sos_test exists"
else
  log "PostgreSQL: creating database sos_test"
  pgsu -d postgres -c 'CREATE DATABASE sos_test OWNER sos_test'
fi
pgsu -d postgres -c 'ALTER DATABASE sos_test OWNER TO sos_test'
pgsu -d sos_test -c 'CREATE EXTENSION IF NOT EXISTS vector'
log "pgvector: extension vector $(pgsu -d sos_test -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'") active in sos_test"
PGPASSWORD=sos_test psql -h 127.0.0.1 -p 5432 -U sos_test -d sos_test -w -Atq -c 'SELECT 1' >/dev/null \
  || die "role sos_test cannot log in over TCP at 127.0.0.1:5432 with its password; check pg_hba.conf"
log "PostgreSQL: tests connect as postgres://sos_test:sos_test@127.0.0.1:5432/sos_test"
[ "${SOS_SKIP_REDIS:-}" = 1 ] || log "Redis: $(redis-cli -h 127.0.0.1 ping)"
log "done"
