#!/usr/bin/env bash
# A throwaway single-node Apache Kafka broker (KRaft, combined broker+controller) for
# development and the test suite.
#
#   scripts/kafka.sh start    fetch jars (once), format storage (once), start; waits until
#                             the broker answers; last stdout line = bootstrap address
#   scripts/kafka.sh stop     SIGTERM, up to 30 s for a clean shutdown, then SIGKILL; no-op
#                             when not running
#   scripts/kafka.sh status   print the bootstrap address and exit 0 when running, 3 otherwise
#   scripts/kafka.sh reset    stop and delete all topics/data (next start re-formats)
#
# The broker jars come from Maven Central through tests/infra/kafka/pom.xml (Maven and
# Java 17+ are needed); they are cached and fetched again only when the pom changes.
# The broker listens on 127.0.0.1 only, without authentication -- test data only.
#
# Environment:
#   AGENT_BOM_KAFKA_PORT             client (PLAINTEXT) port (default 19092)
#   AGENT_BOM_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093)
#                                    Keep both below the kernel's ephemeral range
#                                    (net.ipv4.ip_local_port_range): while the broker
#                                    is down, a client reconnecting to a port in that
#                                    range can be given it as its own source port and
#                                    connect to itself, and the broker cannot bind it.
#   AGENT_BOM_KAFKA_DIR              state dir: lib/ (jars), data/ (log.dirs), server.log,
#                                    server.properties, kafka.pid
#                                    default: /var/lib/agent-bom/kafka when run as root,
#                                    else ${XDG_CACHE_HOME:-$HOME/.cache}/agent-bom/kafka
#   AGENT_BOM_KAFKA_LIB              jar dir (default: lib/ in the state dir); a second
#                                    broker can share the first one's jars
#   AGENT_BOM_KAFKA_AUTO_CREATE      true|false: auto.create.topics.enable (default true)
#   AGENT_BOM_KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms128m -Xmx512m")
#   AGENT_BOM_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 90)
#   AGENT_BOM_KAFKA_PYTHON           Python with confluent-kafka used for the readiness
#                                    probe (default: the checkout's .venv, then python3;
#                                    without one, the port and the log are checked instead)
#   JAVA_HOME                        the JVM to use (default: java on PATH)
#
# All progress goes to stderr; `start` and `status` print only the bootstrap address.
set -euo pipefail

PORT="${AGENT_BOM_KAFKA_PORT:-19092}"
CPORT="${AGENT_BOM_KAFKA_CONTROLLER_PORT:-19093}"
HEAP_OPTS="${AGENT_BOM_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
START_TIMEOUT="${AGENT_BOM_KAFKA_START_TIMEOUT:-90}"
AUTO_CREATE="${AGENT_BOM_KAFKA_AUTO_CREATE:-true}"
STOP_TIMEOUT=30
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
MAIN_CLASS=kafka.Kafka
STORAGE_TOOL=kafka.tools.StorageTool

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
POM="$ROOT/tests/infra/kafka/pom.xml"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ "$PORT" =~ ^[0-9]+$ ]] || die "AGENT_BOM_KAFKA_PORT must be a number, got '$PORT'"
[[ "$CPORT" =~ ^[0-9]+$ ]] || die "AGENT_BOM_KAFKA_CONTROLLER_PORT must be a number, got '$CPORT'"
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] ||
	die "AGENT_BOM_KAFKA_START_TIMEOUT must be a number, got '$START_TIMEOUT'"
[[ "$AUTO_CREATE" == true || "$AUTO_CREATE" == false ]] ||
	die "AGENT_BOM_KAFKA_AUTO_CREATE must be true or false, got '$AUTO_CREATE'"
[[ "$PORT" != "$CPORT" ]] || die "the client and controller ports must differ ($PORT)"

if [[ $(id -u) -eq 0 ]]; then
	BASE="${AGENT_BOM_KAFKA_DIR:-/var/lib/agent-bom/kafka}"
else
	BASE="${AGENT_BOM_KAFKA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-bom/kafka}"
fi
LIB="${AGENT_BOM_KAFKA_LIB:-$BASE/lib}"
DATA="$BASE/data"
CONF="$BASE/server.properties"
LOG4J="$BASE/log4j2.properties"
LOGFILE="$BASE/server.log"
PIDFILE="$BASE/kafka.pid"
CLUSTER_ID_FILE="$BASE/cluster.id"
LIB_STAMP="$LIB/.pom.sha256"

# --- helpers -----------------------------------------------------------------------

java_bin() {
	if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
		echo "$JAVA_HOME/bin/java"
	elif command -v java >/dev/null 2>&1; then
		command -v java
	else
		return 1
	fi
}

check_java() {
	JAVA=$(java_bin) || die "java not found (Kafka 4 needs Java 17+); install openjdk-17-jre-headless or set JAVA_HOME"
	local v major
	v=$("$JAVA" -version 2>&1 | sed -nE 's/.*version "([^"]+)".*/\1/p' | head -n 1)
	major=${v%%.*}
	[[ "$major" == 1 ]] && major=$(cut -d. -f2 <<<"$v")
	[[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell the Java version of $JAVA ('$v')"
	((major >= 17)) || die "Kafka 4 needs Java 17+, $JAVA is Java $v; set JAVA_HOME"
}

log_tail() {
	[[ -r "$LOGFILE" ]] || return 0
	log "last lines of $LOGFILE:"
	tail -n 25 "$LOGFILE" >&2 || true
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Is process $1 our broker (guards against pid reuse after a crash or reboot)?
is_our_broker() {
	local cmd
	kill -0 "$1" 2>/dev/null || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
	[[ "${cmd%% *}" == *java && "$cmd" == *" $MAIN_CLASS $CONF " ]]
}

# Pid of our running broker: the pid file's, else (pid file lost) found in /proc.
broker_pid() {
	local pid f
	if [[ -f "$PIDFILE" ]]; then
		pid=$(<"$PIDFILE")
		if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
			echo "$pid"
			return 0
		fi
	fi
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if is_our_broker "$pid"; then
			echo "$pid" >"$PIDFILE" 2>/dev/null || true
			echo "$pid"
			return 0
		fi
	done
	return 1
}

find_python() {
	local p
	for p in "${AGENT_BOM_KAFKA_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
		[[ -n "$p" ]] || continue
		command -v "$p" >/dev/null 2>&1 || continue
		"$p" -c 'import confluent_kafka' >/dev/null 2>&1 && {
			echo "$p"
			return 0
		}
	done
	return 1
}

# Does the broker answer a metadata request (and list itself)? Falls back to the port
# and the "started" log line when no Python with confluent-kafka is at hand.
answers() {
	if [[ -n "$PYTHON" ]]; then
		"$PYTHON" - "$BOOTSTRAP" <<-'EOF' >/dev/null 2>&1
			import sys
			from confluent_kafka.admin import AdminClient
			md = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=3)
			sys.exit(0 if md.brokers else 1)
		EOF
	else
		port_open "$PORT" && grep -q 'Kafka Server started' "$LOGFILE" 2>/dev/null
	fi
}

# --- jars --------------------------------------------------------------------------

fetch_jars() {
	[[ -f "$POM" ]] || die "missing $POM"
	local want
	want=$(sha256sum "$POM" | cut -d' ' -f1)
	if [[ -f "$LIB_STAMP" && "$(<"$LIB_STAMP")" == "$want" ]]; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven"
	log "fetching the Kafka broker jars with Maven into $LIB (once)"
	local tmp="$BASE/lib.tmp.$$"
	rm -rf "$tmp"
	if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" \
		-Dmdep.useBaseVersion=true </dev/null >&2; then
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed for $POM"
	fi
	compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || {
		rm -rf "$tmp"
		die "Maven fetched no kafka_2.13 jar"
	}
	echo "$want" >"$tmp/.pom.sha256"
	rm -rf "$LIB"
	mv "$tmp" "$LIB"
}

# --- configuration -----------------------------------------------------------------

write_conf() {
	# Rewritten on every start so the settings always match this script.
	cat >"$CONF" <<-EOF
		# Written by scripts/kafka.sh -- throwaway test broker, do not edit.
		node.id=1
		process.roles=broker,controller
		listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
		advertised.listeners=PLAINTEXT://$HOST:$PORT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		inter.broker.listener.name=PLAINTEXT
		controller.listener.names=CONTROLLER
		controller.quorum.voters=1@$HOST:$CPORT
		log.dirs=$DATA
		num.partitions=3
		default.replication.factor=1
		min.insync.replicas=1
		auto.create.topics.enable=$AUTO_CREATE
		delete.topic.enable=true
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=10
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		transaction.state.log.num.partitions=10
		share.coordinator.state.topic.replication.factor=1
		share.coordinator.state.topic.min.isr=1
		group.initial.rebalance.delay.ms=0
		num.network.threads=2
		num.io.threads=4
		background.threads=4
		log.cleaner.dedupe.buffer.size=16777216
		log.retention.hours=24
	EOF
	cat >"$LOG4J" <<-'EOF'
		# Written by scripts/kafka.sh.
		status = warn
		appender.out.type = Console
		appender.out.name = OUT
		appender.out.layout.type = PatternLayout
		appender.out.layout.pattern = [%d] %p %m (%c)%n
		rootLogger.level = INFO
		rootLogger.appenderRef.out.ref = OUT
		logger.request.name = kafka.request.logger
		logger.request.level = WARN
		logger.state.name = state.change.logger
		logger.state.level = WARN
		logger.authorizer.name = kafka.authorizer.logger
		logger.authorizer.level = WARN
	EOF
}

format_storage() {
	[[ -f "$DATA/meta.properties" ]] && return 0
	if [[ -e "$DATA" ]]; then
		log "removing unformatted data directory $DATA"
		rm -rf "$DATA"
	fi
	local id
	if [[ -s "$CLUSTER_ID_FILE" ]]; then
		id=$(<"$CLUSTER_ID_FILE")
	else
		id=$("$JAVA" -cp "$LIB/*" "$STORAGE_TOOL" random-uuid 2>/dev/null | tail -n 1) ||
			die "$STORAGE_TOOL random-uuid failed"
		echo "$id" >"$CLUSTER_ID_FILE"
	fi
	log "formatting KRaft storage in $DATA (cluster id $id)"
	if ! "$JAVA" -Dlog4j2.configurationFile="$LOG4J" -cp "$LIB/*" "$STORAGE_TOOL" format \
		-t "$id" -c "$CONF" >"$BASE/format.log" 2>&1; then
		tail -n 30 "$BASE/format.log" >&2
		rm -rf "$DATA"
		die "$STORAGE_TOOL format failed"
	fi
}

# --- commands ----------------------------------------------------------------------

check_ports_free() {
	local p
	for p in "$PORT" "$CPORT"; do
		port_open "$p" &&
			die "port $p on $HOST is used by another process; set AGENT_BOM_KAFKA_PORT / AGENT_BOM_KAFKA_CONTROLLER_PORT"
	done
	return 0
}

# A port taken between our check and the broker's bind (for instance by a client's
# self-connection, see AGENT_BOM_KAFKA_PORT) is usually let go within seconds: retry.
start_broker() {
	local try
	for try in 1 2 3 4 5; do
		start_broker_once && return 0
		grep -q 'Address already in use' "$LOGFILE" 2>/dev/null ||
			die "the broker exited during start-up; see the log above"
		log "port $PORT or $CPORT on $HOST is taken (attempt $try of 5); retrying in 3 s"
		sleep 3
	done
	die "port $PORT or $CPORT on $HOST stays taken; free it or set AGENT_BOM_KAFKA_PORT / AGENT_BOM_KAFKA_CONTROLLER_PORT (below $(ephemeral_low))"
}

# The lowest port the kernel hands out as a client's source port.
ephemeral_low() {
	local low
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
	echo "$low"
}

# 0 when the broker came up; 1 when it exited during start-up (its log says why).
start_broker_once() {
	[[ -f "$LOGFILE" ]] && mv -f "$LOGFILE" "$LOGFILE.1"
	rm -f "$PIDFILE"
	log "starting Kafka on $BOOTSTRAP (controller $HOST:$CPORT, data: $DATA)"
	local -a jvm
	read -r -a jvm <<<"$HEAP_OPTS"
	# 9>&-: the broker must not inherit (and so hold forever) the start lock.
	nohup "$JAVA" "${jvm[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$LOG4J" -cp "$LIB/*" "$MAIN_CLASS" "$CONF" \
		</dev/null >"$LOGFILE" 2>&1 9>&- &
	local pid=$!
	echo "$pid" >"$PIDFILE"
	local deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			log_tail
			return 1
		fi
		answers && return 0
		sleep 0.5
	done
	log_tail
	kill -TERM "$pid" 2>/dev/null || true
	die "the broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s (still starting? see $LOGFILE)"
}

stop_broker() {
	local pid i
	pid=$(broker_pid) || {
		rm -f "$PIDFILE"
		log "not running"
		return 0
	}
	log "stopping Kafka (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "no clean shutdown within ${STOP_TIMEOUT}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$PIDFILE"
	log "stopped"
}

lock() {
	mkdir -p "$BASE" || die "cannot create $BASE"
	# Serialise concurrent start/stop calls (e.g. parallel test workers).
	exec 9>"$BASE/.lock"
	flock -w 300 9 || die "timed out waiting for another kafka.sh call"
}

cmd_start() {
	lock
	PYTHON=$(find_python) || PYTHON=""
	if broker_pid >/dev/null && answers; then
		log "already running on $BOOTSTRAP ($BASE)"
	else
		if broker_pid >/dev/null; then
			log "broker process runs but does not answer on $BOOTSTRAP; restarting it"
			stop_broker
		fi
		check_ports_free
		check_java
		fetch_jars
		write_conf
		format_storage
		start_broker
	fi
	log "ready: $BOOTSTRAP"
	echo "$BOOTSTRAP"
}

cmd_stop() {
	[[ -d "$BASE" ]] || {
		log "not running (no $BASE)"
		return 0
	}
	lock
	stop_broker
}

cmd_status() {
	if broker_pid >/dev/null; then
		log "running on $BOOTSTRAP ($BASE)"
		echo "$BOOTSTRAP"
		return 0
	fi
	log "not running ($BASE)"
	return 3
}

cmd_reset() {
	cmd_stop
	log "deleting $DATA and $CLUSTER_ID_FILE"
	rm -rf "$DATA" "$CLUSTER_ID_FILE"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
*)
	echo "usage: $0 {start|stop|status|reset}" >&2
	exit 2
	;;
esac
