#!/usr/bin/env bash
# A PostgreSQL primary and a synchronous hot standby on this machine, as two throwaway clusters of
# Debian's PostgreSQL (see docs/failover.md). The cluster `main` (port 5432) is never touched.
#
#   failover/cluster.sh up            create both (removing what an earlier run left), wait until
#                                     the standby is synchronous
#   failover/cluster.sh kill-primary  SIGKILL the primary's postmaster (a crashed server)
#   failover/cluster.sh promote       promote the standby to read-write primary
#   failover/cluster.sh down          stop and remove both clusters
#   failover/cluster.sh url           the service's DATABASE_URL (libpq multi-host)
#
# Environment: FAILOVER_PRIMARY_PORT (5433), FAILOVER_STANDBY_PORT (5434), FAILOVER_DATABASE
# (tasks). Runs as root: Debian's pg_* wrappers switch to the clusters' owner, `postgres`.
set -euo pipefail

VERSION="${PG_VERSION:-$(ls /etc/postgresql | sort -V | tail -1)}"
PRIMARY=failover_primary
STANDBY=failover_standby
PRIMARY_PORT="${FAILOVER_PRIMARY_PORT:-5433}"
STANDBY_PORT="${FAILOVER_STANDBY_PORT:-5434}"
DATABASE="${FAILOVER_DATABASE:-tasks}"
BIN="/usr/lib/postgresql/$VERSION/bin"

as_postgres() { runuser -u postgres -- "$@"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atc "$2"; }
data_dir() { echo "/var/lib/postgresql/$VERSION/$1"; }

wait_ready() {  # port, what for
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$1" && return 0; sleep 0.1; done
  echo "cluster.sh: $2 on port $1 did not start; log:" >&2
  tail -20 "/var/log/postgresql/postgresql-$VERSION-$3.log" >&2 || true
  exit 1
}

down() {
  for name in "$STANDBY" "$PRIMARY"; do
    if pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION $name"; then
      # --stop: a crashed (SIGKILLed) cluster is merely removed.
      pg_dropcluster --stop "$VERSION" "$name" 2>/dev/null || {
        pg_ctlcluster --skip-systemctl-redirect -m immediate "$VERSION" "$name" stop || true
        pg_dropcluster "$VERSION" "$name"
      }
    fi
    # What a run that crashed half-way left (our conf.d file also keeps pg_dropcluster from
    # removing the configuration directory).
    rm -rf "/etc/postgresql/$VERSION/$name" "$(data_dir "$name")"
  done
}

create() {  # name, port, extra settings (lines of postgresql.conf)…
  local name="$1" port="$2"
  shift 2
  pg_createcluster "$VERSION" "$name" -p "$port" --start-conf=manual \
    -- --auth-host=trust --auth-local=peer --no-sync >/dev/null
  # Only this port, on loopback; trust on 127.0.0.1 (replication included, as initdb's defaults
  # list it): a local test topology, like the shared cluster the suite uses.
  printf '%s\n' "listen_addresses = '127.0.0.1'" "cluster_name = '$name'" \
    "shared_buffers = 32MB" "wal_level = replica" "hot_standby = on" \
    "synchronous_commit = on" "$@" >"/etc/postgresql/$VERSION/$name/conf.d/failover.conf"
}

up() {
  down
  for port in "$PRIMARY_PORT" "$STANDBY_PORT"; do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then
      echo "cluster.sh: port $port is taken by another server; set FAILOVER_*_PORT" >&2
      exit 1
    fi
  done

  create "$PRIMARY" "$PRIMARY_PORT"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$PRIMARY" start
  wait_ready "$PRIMARY_PORT" primary "$PRIMARY"
  sql "$PRIMARY_PORT" "CREATE ROLE root LOGIN SUPERUSER"
  sql "$PRIMARY_PORT" "CREATE DATABASE $DATABASE OWNER root"

  # The standby: its configuration from pg_createcluster, its data a base backup of the primary.
  create "$STANDBY" "$STANDBY_PORT" \
    "primary_conninfo = 'host=127.0.0.1 port=$PRIMARY_PORT user=postgres application_name=$STANDBY'"
  local standby_data
  standby_data="$(data_dir "$STANDBY")"
  find "$standby_data" -mindepth 1 -delete  # pg_basebackup fills it (its parent is root's)
  as_postgres "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
    -D "$standby_data" -X stream -c fast --no-sync
  as_postgres touch "$standby_data/standby.signal"
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$STANDBY" start
  wait_ready "$STANDBY_PORT" standby "$STANDBY"

  # Synchronous from now on: a COMMIT returns only once the standby has flushed it, so what the
  # primary acknowledged survives the primary's loss.
  sql "$PRIMARY_PORT" "ALTER SYSTEM SET synchronous_standby_names = '$STANDBY'"
  sql "$PRIMARY_PORT" "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 100); do
    state="$(sql "$PRIMARY_PORT" \
      "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$STANDBY'")"
    [ "$state" = sync ] && break
    sleep 0.1
  done
  if [ "$state" != sync ]; then
    echo "cluster.sh: the standby did not become synchronous (state: '${state:-absent}')" >&2
    exit 1
  fi
  echo "primary 127.0.0.1:$PRIMARY_PORT, synchronous hot standby 127.0.0.1:$STANDBY_PORT"
}

kill_primary() {
  local pid
  pid="$(head -1 "$(data_dir "$PRIMARY")/postmaster.pid")"
  kill -KILL "$pid"
  echo "SIGKILLed the primary's postmaster (pid $pid)"
}

promote() {
  # pg_promote waits (up to 60 s) until the standby accepts writes.
  [ "$(sql "$STANDBY_PORT" "SELECT pg_promote()")" = t ] || { echo "promote failed" >&2; exit 1; }
  echo "promoted 127.0.0.1:$STANDBY_PORT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill-primary) kill_primary ;;
  promote) promote ;;
  url)
    echo "postgres://root@127.0.0.1:$PRIMARY_PORT,127.0.0.1:$STANDBY_PORT/$DATABASE?target_session_attrs=read-write"
    ;;
  *)
    echo "usage: $0 up|down|kill-primary|promote|url" >&2
    exit 2
    ;;
esac
