#!/usr/bin/env bash
# Start the machine's own MariaDB and PostgreSQL if they are not answering (CI machines start
# them before the session; this makes a stopped one come back).
set -euo pipefail

port_open() { python3 -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', $1)))"; }

wait_port() {
  for _ in $(seq 1 30); do port_open "$1" && return 0; sleep 1; done
  echo "service on port $1 did not come up" >&2; return 1
}

if ! port_open 3306; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306
fi
if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_port 5432
fi
echo "services: MariaDB :3306 and PostgreSQL :5432 are up"
