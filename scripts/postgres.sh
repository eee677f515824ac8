#!/usr/bin/env bash
# A throwaway PostgreSQL server for development and the test suite.
#
#   scripts/postgres.sh start    install (if needed), init (once) and start; last stdout line = DSN
#   scripts/postgres.sh stop     stop it (fast shutdown); no-op when not running
#   scripts/postgres.sh status   print the DSN and exit 0 when running, exit 3 otherwise
#
# It never touches Debian's own cluster or its systemd service: it runs a private
# cluster listening on 127.0.0.1 only, with trust auth and durability switched off
# (fsync, synchronous_commit, full_page_writes) -- test data only.
#
# Environment:
#   AGENT_BOM_PG_PORT  TCP port (default 55432)
#   AGENT_BOM_PG_DIR   state dir: data/, run/ (unix socket), server.log
#                      default: ${XDG_CACHE_HOME:-$HOME/.cache}/agent-bom/pg, or
#                      /var/lib/agent-bom/pg when run as root (the server then runs as
#                      the `postgres` OS user, which cannot enter /root).
#
# All progress goes to stderr; `start` prints only the DSN on stdout.
set -euo pipefail

PORT="${AGENT_BOM_PG_PORT:-55432}"
ROLE=agent_bom
DB=agent_bom
SUPERUSER=postgres
START_TIMEOUT=30

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ "$PORT" =~ ^[0-9]+$ ]] || die "AGENT_BOM_PG_PORT must be a number, got '$PORT'"

if [[ $(id -u) -eq 0 ]]; then
	IS_ROOT=1
	BASE="${AGENT_BOM_PG_DIR:-/var/lib/agent-bom/pg}"
else
	IS_ROOT=0
	BASE="${AGENT_BOM_PG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-bom/pg}"
fi
DATA="$BASE/data"
SOCK="$BASE/run"
LOGFILE="$BASE/server.log"
DSN="postgresql://$ROLE@127.0.0.1:$PORT/$DB"

# Run a command as the server's OS user (postgres when we are root, else ourselves).
as_pg() {
	if ((IS_ROOT)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# --- server binaries -------------------------------------------------------------

find_bindir() {
	local want="" d
	# An existing cluster must be served by its own major version.
	if [[ -f "$DATA/PG_VERSION" ]]; then
		want=$(<"$DATA/PG_VERSION")
		if [[ -x "/usr/lib/postgresql/$want/bin/initdb" ]]; then
			echo "/usr/lib/postgresql/$want/bin"
			return 0
		fi
	fi
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb 2>/dev/null |
		grep -v '\*' | sort -V | tail -n 1 || true)
	if [[ -n "$d" && -x "$d" ]]; then
		dirname "$d"
		return 0
	fi
	if d=$(command -v initdb 2>/dev/null) && [[ -n "$d" ]]; then
		dirname "$d"
		return 0
	fi
	return 1
}

install_postgres() {
	local sudo=()
	if ((!IS_ROOT)); then
		command -v sudo >/dev/null 2>&1 ||
			die "PostgreSQL is not installed and installing it needs root (no sudo): apt-get install postgresql"
		sudo=(sudo -n)
	fi
	command -v apt-get >/dev/null 2>&1 ||
		die "PostgreSQL server binaries not found and apt-get is unavailable; install PostgreSQL >= 15"
	log "PostgreSQL server binaries not found; installing with apt-get (a minute or so)"
	local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0)
	if ! "${apt[@]}" install -y --no-install-recommends postgresql </dev/null >&2; then
		log "apt-get install failed; running apt-get update and retrying"
		"${apt[@]}" update </dev/null >&2 || die "apt-get update failed"
		"${apt[@]}" install -y --no-install-recommends postgresql </dev/null >&2 ||
			die "apt-get install postgresql failed"
	fi
}

# --- helpers -----------------------------------------------------------------------

is_running() { [[ -f "$DATA/PG_VERSION" ]] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
is_ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -t 2 >/dev/null 2>&1; }

psql_super() {
	as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$SUPERUSER" "$@"
}

log_tail() {
	[[ -r "$LOGFILE" ]] || return 0
	log "last lines of $LOGFILE:"
	tail -n 20 "$LOGFILE" >&2 || true
}

prepare_dirs() {
	mkdir -p "$BASE" || die "cannot create $BASE"
	BASE=$(cd "$BASE" && pwd -P)
	DATA="$BASE/data"
	SOCK="$BASE/run"
	LOGFILE="$BASE/server.log"
	mkdir -p "$SOCK"
	if ((IS_ROOT)); then
		id postgres >/dev/null 2>&1 || die "OS user 'postgres' does not exist (needed to run the server as root)"
		chown postgres: "$BASE" "$SOCK"
		[[ -e "$LOGFILE" ]] && chown postgres: "$LOGFILE"
		runuser -u postgres -- test -w "$BASE" ||
			die "the postgres OS user cannot reach $BASE (a parent directory is not traversable); set AGENT_BOM_PG_DIR"
	fi
	chmod 755 "$BASE"
	chmod 700 "$SOCK"
}

init_cluster() {
	if [[ -f "$DATA/PG_VERSION" ]]; then
		local have
		have=$(<"$DATA/PG_VERSION")
		[[ "$have" == "$("$BIN/postgres" -V | sed -E 's/.* ([0-9]+).*/\1/')" ]] && return 0
		log "cluster in $DATA is for PostgreSQL $have, which is not installed; re-creating it (test data only)"
		rm -rf "$DATA"
	elif [[ -e "$DATA" ]]; then
		log "removing incomplete cluster directory $DATA"
		rm -rf "$DATA"
	fi
	log "initialising a new cluster in $DATA"
	if ! as_pg "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -A trust -E UTF8 --locale=C \
		--no-sync >"$BASE/initdb.log" 2>&1; then
		cat "$BASE/initdb.log" >&2
		rm -rf "$DATA"
		die "initdb failed"
	fi
	cat >"$DATA/pg_hba.conf" <<-'EOF'
		# agent-bom test cluster: trust, local socket and IPv4 loopback only.
		local all         all              trust
		host  all         all 127.0.0.1/32 trust
		local replication all              trust
		host  replication all 127.0.0.1/32 trust
	EOF
	printf "\ninclude_if_exists = 'agent_bom.conf'\n" >>"$DATA/postgresql.conf"
	((IS_ROOT)) && chown postgres: "$DATA/pg_hba.conf"
	return 0
}

write_conf() {
	# Rewritten on every start so the settings always match this script.
	cat >"$DATA/agent_bom.conf" <<-EOF
		# Written by scripts/postgres.sh -- throwaway test server, do not edit.
		listen_addresses = '127.0.0.1'
		port = $PORT
		unix_socket_directories = '$SOCK'
		max_connections = 200
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		logging_collector = off
	EOF
	((IS_ROOT)) && chown postgres: "$DATA/agent_bom.conf"
	return 0
}

start_server() {
	local action=start
	if is_running; then
		log "server in $DATA runs but does not answer on port $PORT; restarting it"
		action=restart
	fi
	log "starting PostgreSQL on 127.0.0.1:$PORT (data: $DATA)"
	local out
	# 9>&-: the server must not inherit (and so hold forever) the start lock.
	# A server killed with SIGKILL can leave backends holding its shared memory for a
	# moment ("pre-existing shared memory block is still in use"): try again once.
	if ! out=$(as_pg "$BIN/pg_ctl" "$action" -D "$DATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" \
		-s 2>&1 9>&-) && ! { sleep 3 && out=$(as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" \
		-w -t "$START_TIMEOUT" -s 2>&1 9>&-); }; then
		[[ -n "$out" ]] && printf '%s\n' "$out" >&2
		log_tail
		if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1; then
			die "port $PORT is already used by another server; set AGENT_BOM_PG_PORT"
		fi
		die "PostgreSQL failed to start (pg_ctl start, timeout ${START_TIMEOUT}s); see the log above"
	fi
	local i
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		is_ready && return 0
		sleep 0.1
	done
	log_tail
	die "PostgreSQL started but pg_isready got no answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
}

ensure_role_and_db() {
	psql_super -d postgres <<-EOF >&2 || die "could not create role/database $ROLE"
		SELECT format('CREATE ROLE %I LOGIN CREATEDB', '$ROLE')
		WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
		SELECT format('CREATE DATABASE %I OWNER %I', '$DB', '$ROLE')
		WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
		SELECT format('GRANT pg_signal_backend TO %I', '$ROLE') \gexec
	EOF
}

# --- commands ----------------------------------------------------------------------

cmd_start() {
	prepare_dirs
	cd "$BASE" # the postgres OS user may not be able to enter the caller's cwd
	# Serialise concurrent starts (e.g. parallel test workers).
	exec 9>"$BASE/.lock"
	flock -w 300 9 || die "timed out waiting for another postgres.sh start"

	if ! BIN=$(find_bindir); then
		install_postgres
		BIN=$(find_bindir) || die "PostgreSQL server binaries still not found after installing"
	fi
	if is_running && is_ready; then
		log "already running on 127.0.0.1:$PORT ($DATA)"
	else
		init_cluster
		write_conf
		start_server
	fi
	ensure_role_and_db
	log "ready: $DSN"
	echo "$DSN"
}

cmd_stop() {
	if [[ ! -f "$DATA/PG_VERSION" ]] || ! BIN=$(find_bindir); then
		log "not running (no cluster in $DATA)"
		return 0
	fi
	cd "$BASE"
	if is_running; then
		log "stopping PostgreSQL ($DATA)"
		as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s >&2 || die "pg_ctl stop failed"
	else
		log "not running"
	fi
}

cmd_status() {
	if [[ -f "$DATA/PG_VERSION" ]] && BIN=$(find_bindir) && (cd "$BASE" && is_running); then
		log "running on 127.0.0.1:$PORT ($DATA)"
		echo "$DSN"
		return 0
	fi
	log "not running ($DATA)"
	return 3
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 {start|stop|status}" >&2
	exit 2
	;;
esac
