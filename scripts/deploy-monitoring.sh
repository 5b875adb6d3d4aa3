#!/usr/bin/env bash
# deploy-monitoring.sh: start, stop or ship Prism's monitoring stack (SPEC.md §9).
#
#   local       Docker Compose when a Docker engine answers, otherwise the Debian binaries
#               (prometheus, prometheus-alertmanager, prometheus-node-exporter) as plain
#               background processes bound to 127.0.0.1, using generated copies of
#               monitoring/*.yml under the state directory.
#   stop        tear down whatever `local` started (processes or compose project).
#   status      show what `local` started.
#   production  copy the stack to a remote host over ssh and start it there with Compose.
#
# Run with --help for options and environment variables.
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly COMPOSE_FILE="$REPO_ROOT/docker-compose.monitoring.yml"

STATE_DIR="${PRISM_MONITORING_DIR:-$REPO_ROOT/.monitoring}"
PRISM_TARGET="${PRISM_TARGET:-127.0.0.1:8081}"
PROMETHEUS_PORT="${PRISM_PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${PRISM_ALERTMANAGER_PORT:-9093}"
NODE_EXPORTER_PORT="${PRISM_NODE_EXPORTER_PORT:-9100}"
SCRAPE_INTERVAL="${PRISM_SCRAPE_INTERVAL:-15s}"
READY_TIMEOUT_SECONDS="${PRISM_MONITORING_READY_TIMEOUT:-60}"
FORCE_NATIVE="${PRISM_MONITORING_NO_DOCKER:-0}"
DEPLOY_HOST="${PRISM_DEPLOY_HOST:-}"
DEPLOY_USER="${PRISM_DEPLOY_USER:-}"
DEPLOY_SSH_KEY="${PRISM_DEPLOY_SSH_KEY:-}"
DEPLOY_DIR="${PRISM_DEPLOY_DIR:-/opt/prism-monitoring}"
DRY_RUN=0

usage() {
    cat <<EOF
Usage: scripts/deploy-monitoring.sh local|stop|status|production [options]

Commands
  local        start Prometheus, Alertmanager (and node exporter) for a local Prism
  stop         stop what 'local' started
  status       show what 'local' started
  production   copy monitoring/ to a remote host and run docker compose there

Options
  --dry-run        print what would be done, change nothing
  --host HOST      production host (env PRISM_DEPLOY_HOST)
  --user USER      ssh user (env PRISM_DEPLOY_USER)
  --ssh-key FILE   ssh identity file (env PRISM_DEPLOY_SSH_KEY)
  --remote-dir DIR directory on the production host (env PRISM_DEPLOY_DIR, default /opt/prism-monitoring)
  --native         never use Docker for 'local' (env PRISM_MONITORING_NO_DOCKER=1)
  -h, --help       this text

Environment (local)
  PRISM_MONITORING_DIR       state dir: configs, data, logs, pids (default ./.monitoring)
  PRISM_TARGET               Prism REST API host:port to scrape (default 127.0.0.1:8081)
  PRISM_PROMETHEUS_PORT      default 9090
  PRISM_ALERTMANAGER_PORT    default 9093
  PRISM_NODE_EXPORTER_PORT   default 9100
  PRISM_SCRAPE_INTERVAL      scrape and rule evaluation interval (default 15s)
  PRISM_MONITORING_READY_TIMEOUT  seconds to wait for readiness (default 60)
  Receiver secrets, written to files in the state dir (never into the repository):
  PRISM_WEBHOOK_URL, PRISM_WEBHOOK_TOKEN, PRISM_SLACK_API_URL, PRISM_SMTP_PASSWORD,
  PRISM_GRAFANA_ADMIN_PASSWORD
EOF
}

log() { printf 'deploy-monitoring: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints a command (quoted) in dry-run mode, runs it otherwise.
run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf '[dry-run]'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

docker_available() {
    [[ $FORCE_NATIVE != 1 ]] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# Writes one secret file from an env var (empty placeholder when unset), mode 600.
write_secret() {
    local name="$1" value="$2" file="$STATE_DIR/secrets/$1"
    if [[ $DRY_RUN == 1 ]]; then
        echo "[dry-run] write secret file $file (${value:+from env}${value:-empty placeholder})"
        return
    fi
    ( umask 077; printf '%s' "$value" >"$file" )
    [[ -n $value ]] || log "note: $file is an empty placeholder; set PRISM_${name^^} to fill it"
}

prepare_state_dir() {
    run mkdir -p "$STATE_DIR/config/rules" "$STATE_DIR/data/prometheus" \
        "$STATE_DIR/data/alertmanager" "$STATE_DIR/secrets" "$STATE_DIR/logs" "$STATE_DIR/pids"
    write_secret webhook_token "${PRISM_WEBHOOK_TOKEN:-}"
    write_secret slack_api_url "${PRISM_SLACK_API_URL:-}"
    write_secret smtp_password "${PRISM_SMTP_PASSWORD:-}"
    write_secret grafana_admin_password "${PRISM_GRAFANA_ADMIN_PASSWORD:-}"
}

# Generated copies of the repository configs with targets rewritten to loopback ports.
generate_native_configs() {
    local cfg="$STATE_DIR/config"
    if [[ $DRY_RUN == 1 ]]; then
        echo "[dry-run] generate $cfg/prometheus.yml (prism -> $PRISM_TARGET, node -> 127.0.0.1:$NODE_EXPORTER_PORT, interval $SCRAPE_INTERVAL)"
        echo "[dry-run] generate $cfg/alertmanager.yml (secrets -> $STATE_DIR/secrets)"
        return
    fi
    cp "$REPO_ROOT"/monitoring/rules/*.yml "$cfg/rules/"
    sed -e "s|host.docker.internal:8081|$PRISM_TARGET|" \
        -e "s|node-exporter:9100|127.0.0.1:$NODE_EXPORTER_PORT|" \
        -e "s|localhost:9090|127.0.0.1:$PROMETHEUS_PORT|" \
        -e "s|alertmanager:9093|127.0.0.1:$ALERTMANAGER_PORT|g" \
        -e "s|^\(  scrape_interval:\).*|\1 $SCRAPE_INTERVAL|" \
        -e "s|^\(  evaluation_interval:\).*|\1 $SCRAPE_INTERVAL|" \
        -e "s|^\(  scrape_timeout:\).*|\1 $SCRAPE_INTERVAL|" \
        "$REPO_ROOT/monitoring/prometheus.yml" >"$cfg/prometheus.yml"
    sed -e "s|/etc/alertmanager/secrets/|$STATE_DIR/secrets/|g" \
        ${PRISM_WEBHOOK_URL:+-e "s|http://127.0.0.1:9099/alerts|$PRISM_WEBHOOK_URL|g"} \
        "$REPO_ROOT/monitoring/alertmanager.yml" >"$cfg/alertmanager.yml"
}

# A process counts as running when it exists and is not a zombie awaiting its reaper.
process_running() {
    local pid="$1" state
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)"
    [[ $state != Z && $state != gone ]]
}

pid_alive() { [[ -f $1 ]] && process_running "$(cat "$1")"; }

# Starts one binary in the background with its own log and pid file.
start_process() {
    local name="$1"; shift
    local pidfile="$STATE_DIR/pids/$name.pid"
    if pid_alive "$pidfile"; then
        die "$name already running (pid $(cat "$pidfile")); run '$0 stop' first"
    fi
    if [[ $DRY_RUN == 1 ]]; then
        printf '[dry-run] start %s:' "$name"; printf ' %q' "$@"; printf '\n'
        return
    fi
    setsid "$@" </dev/null >"$STATE_DIR/logs/$name.log" 2>&1 &
    echo $! >"$pidfile"
    log "started $name (pid $!, log $STATE_DIR/logs/$name.log)"
}

wait_ready() {
    local name="$1" url="$2" pidfile="$STATE_DIR/pids/$1.pid" waited=0
    [[ $DRY_RUN == 1 ]] && { echo "[dry-run] wait for $url"; return; }
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        pid_alive "$pidfile" || die "$name exited; see $STATE_DIR/logs/$name.log"
        (( waited++ < READY_TIMEOUT_SECONDS * 4 )) || die "$name not ready after ${READY_TIMEOUT_SECONDS}s ($url)"
        sleep 0.25
    done
    log "$name ready"
}

require_binary() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found; install it with: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager prometheus-node-exporter"
}

start_native() {
    require_binary prometheus
    require_binary prometheus-alertmanager
    prepare_state_dir
    generate_native_configs
    [[ $DRY_RUN == 1 ]] || echo native >"$STATE_DIR/mode"
    start_process alertmanager prometheus-alertmanager \
        --config.file="$STATE_DIR/config/alertmanager.yml" \
        --storage.path="$STATE_DIR/data/alertmanager" \
        --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" \
        --cluster.listen-address=
    start_process prometheus prometheus \
        --config.file="$STATE_DIR/config/prometheus.yml" \
        --storage.tsdb.path="$STATE_DIR/data/prometheus" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
        --web.enable-lifecycle
    if command -v prometheus-node-exporter >/dev/null 2>&1; then
        start_process node-exporter prometheus-node-exporter \
            --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT"
    else
        log "prometheus-node-exporter not installed; host alerts will have no data"
    fi
    wait_ready alertmanager "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready"
    wait_ready prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
    if [[ -f $STATE_DIR/pids/node-exporter.pid ]]; then
        wait_ready node-exporter "http://127.0.0.1:$NODE_EXPORTER_PORT/metrics"
    fi
    cat <<EOF
Prism monitoring is running (native processes, state in $STATE_DIR):
  Prometheus     http://127.0.0.1:$PROMETHEUS_PORT  (targets: /targets, alerts: /alerts)
  Alertmanager   http://127.0.0.1:$ALERTMANAGER_PORT
  Node exporter  http://127.0.0.1:$NODE_EXPORTER_PORT/metrics
  Prism target   http://$PRISM_TARGET/metrics
  Grafana        not started without Docker; import monitoring/grafana/dashboards/prism-overview.json
Stop with: $0 stop
EOF
}

start_compose() {
    prepare_state_dir
    [[ $DRY_RUN == 1 ]] || echo docker >"$STATE_DIR/mode"
    PRISM_MONITORING_DIR="$STATE_DIR" run docker compose -f "$COMPOSE_FILE" up -d
    cat <<EOF
Prism monitoring is running (docker compose project prism-monitoring):
  Prometheus     http://127.0.0.1:9090
  Alertmanager   http://127.0.0.1:9093
  Grafana        http://127.0.0.1:3000  (dashboard "Prism DNS Overview")
Stop with: $0 stop
EOF
}

stop_process() {
    local name="$1" pidfile="$STATE_DIR/pids/$1.pid" pid waited=0
    [[ -f $pidfile ]] || return 0
    pid="$(cat "$pidfile")"
    if [[ $DRY_RUN == 1 ]]; then echo "[dry-run] stop $name (pid $pid)"; return; fi
    if process_running "$pid"; then
        kill -TERM "$pid"
        while process_running "$pid" && (( waited++ < 40 )); do sleep 0.25; done
        if process_running "$pid"; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_local() {
    local mode
    mode="$(cat "$STATE_DIR/mode" 2>/dev/null || echo native)"
    if [[ $mode == docker ]]; then
        PRISM_MONITORING_DIR="$STATE_DIR" run docker compose -f "$COMPOSE_FILE" down
    else
        stop_process prometheus
        stop_process alertmanager
        stop_process node-exporter
    fi
    [[ $DRY_RUN == 1 ]] || rm -f "$STATE_DIR/mode"
}

status_local() {
    local name pidfile
    for name in prometheus alertmanager node-exporter; do
        pidfile="$STATE_DIR/pids/$name.pid"
        if pid_alive "$pidfile"; then echo "$name running (pid $(cat "$pidfile"))"; else echo "$name stopped"; fi
    done
}

deploy_production() {
    [[ -n $DEPLOY_HOST ]] || die "production needs a host: --host HOST or PRISM_DEPLOY_HOST"
    local destination="${DEPLOY_USER:+$DEPLOY_USER@}$DEPLOY_HOST"
    local -a ssh_opts=(-o BatchMode=yes)
    [[ -z $DEPLOY_SSH_KEY ]] || ssh_opts+=(-i "$DEPLOY_SSH_KEY")
    run ssh "${ssh_opts[@]}" "$destination" "mkdir -p '$DEPLOY_DIR'"
    run scp "${ssh_opts[@]}" -r "$REPO_ROOT/monitoring" "$COMPOSE_FILE" "$destination:$DEPLOY_DIR/"
    run ssh "${ssh_opts[@]}" "$destination" \
        "cd '$DEPLOY_DIR' && test -d .monitoring/secrets || echo 'warning: create $DEPLOY_DIR/.monitoring/secrets/{webhook_token,slack_api_url,smtp_password,grafana_admin_password}' >&2; docker compose -f docker-compose.monitoring.yml up -d"
    [[ $DRY_RUN == 1 ]] && { echo "[dry-run] nothing was changed on $destination"; return; }
    echo "Deployed to $destination:$DEPLOY_DIR (Prometheus 127.0.0.1:9090 on that host; reach it through an ssh tunnel)."
}

main() {
    local command=""
    while (($#)); do
        case "$1" in
            local|stop|status|production) command="$1" ;;
            --dry-run) DRY_RUN=1 ;;
            --native) FORCE_NATIVE=1 ;;
            --host) DEPLOY_HOST="${2:?--host needs a value}"; shift ;;
            --user) DEPLOY_USER="${2:?--user needs a value}"; shift ;;
            --ssh-key) DEPLOY_SSH_KEY="${2:?--ssh-key needs a value}"; shift ;;
            --remote-dir) DEPLOY_DIR="${2:?--remote-dir needs a value}"; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        shift
    done
    case "$command" in
        local) if docker_available; then start_compose; else start_native; fi ;;
        stop) stop_local ;;
        status) status_local ;;
        production) deploy_production ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
