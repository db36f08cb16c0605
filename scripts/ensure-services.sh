#!/usr/bin/env bash
# Make sure MariaDB (127.0.0.1:3306, root without password over TCP) and Redis (127.0.0.1:6379)
# are running, installing and starting them on a fresh Debian machine. Idempotent and quick when
# both already answer.
set -euo pipefail

log() { echo "[services] $*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do tcp_open "$1" && return 0; sleep 0.5; done
  return 1
}

# --- Redis -------------------------------------------------------------------------------
if ! tcp_open 6379; then
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server"
    as_root apt-get update -qq && as_root apt-get install -y -qq redis-server >/dev/null
  fi
  log "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 || { log "Redis did not start"; exit 1; }
fi

# --- MariaDB -----------------------------------------------------------------------------
if ! tcp_open 3306; then
  if [ ! -x /usr/sbin/mariadbd ]; then
    log "installing mariadb-server"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  log "starting MariaDB on 127.0.0.1:3306"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 || { log "MariaDB did not start"; exit 1; }
fi

# Freshly installed Debian MariaDB lets root in by unix socket only: give TCP logins from
# 127.0.0.1 an empty-password root so mysql+asyncmy://root@127.0.0.1 works.
for _ in $(seq 1 30); do
  if mysql --protocol=TCP -h 127.0.0.1 -u root -e 'SELECT 1' >/dev/null 2>&1; then
    exit 0
  fi
  if as_root mysql -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" >/dev/null 2>&1; then
    log "granted root@127.0.0.1 an empty TCP password"
  fi
  sleep 1
done
log "MariaDB does not accept root over TCP on 127.0.0.1:3306; see README 'Services'"
exit 1
