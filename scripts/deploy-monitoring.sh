#!/usr/bin/env bash
# deploy-monitoring.sh: start, stop or ship Prism's monitoring stack (SPEC.md §9).
#
#   local       Docker Compose when a Docker engine answers, otherwise the Debian binaries
#               (prometheus, prometheus-alertmanager, prometheus-node-exporter) as plain
#               background processes bound to 127.0.0.1; no Grafana then.
#   stop        tear down whatever `local` started (processes or compose project).
#   status      show what `local` started.
#   render      write the configuration a deployment would run into a directory, start nothing.
#   production  render the stack, copy it to a remote host over ssh and start it there with
#               Compose; refuses when a target, a receiver or a secret it needs is missing.
#
# What gets rendered from monitoring/: the alert rules with runbook links under
# --runbook-url, file_sd target lists (one entry per Prism node), an alertmanager.yml with
# only the receivers that are configured, and the secret files.
#
# Run with --help for options and environment variables.
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly COMPOSE_FILE="$REPO_ROOT/docker-compose.monitoring.yml"
readonly DASHBOARD="$REPO_ROOT/monitoring/grafana/dashboards/prism-overview.json"
# Placeholders of the repository's files that rendering replaces.
readonly RUNBOOK_PLACEHOLDER="https://example.invalid/prism/monitoring/RUNBOOK.md"
readonly WEBHOOK_PLACEHOLDER="https://webhook.example.invalid/prism/alerts"
# Characters no value written into a rendered YAML string may contain.
readonly UNSAFE_CHARS='["\\[:cntrl:][:space:]]'

STATE_DIR="${PRISM_MONITORING_DIR:-$REPO_ROOT/.monitoring}"
PROMETHEUS_PORT="${PRISM_PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${PRISM_ALERTMANAGER_PORT:-9093}"
NODE_EXPORTER_PORT="${PRISM_NODE_EXPORTER_PORT:-9100}"
SCRAPE_INTERVAL="${PRISM_SCRAPE_INTERVAL:-15s}"
READY_TIMEOUT_SECONDS="${PRISM_MONITORING_READY_TIMEOUT:-60}"
FORCE_NATIVE="${PRISM_MONITORING_NO_DOCKER:-0}"
RUNBOOK_URL="${PRISM_RUNBOOK_URL:-}"
DEPLOY_HOST="${PRISM_DEPLOY_HOST:-}"
DEPLOY_USER="${PRISM_DEPLOY_USER:-}"
DEPLOY_SSH_KEY="${PRISM_DEPLOY_SSH_KEY:-}"
DEPLOY_DIR="${PRISM_DEPLOY_DIR:-/opt/prism-monitoring}"
RENDER_DIR=""
DRY_RUN=0
PRISM_TARGETS_LIST=()
NODE_TARGETS_LIST=()

usage() {
    cat <<EOF
Usage: scripts/deploy-monitoring.sh local|stop|status|render|production [options]

Commands
  local        start Prometheus, Alertmanager and node exporter (and Grafana with Docker)
  stop         stop what 'local' started
  status       show what 'local' started
  render       write the rendered configuration into --out DIR (Compose layout; the
               native one with --native) and start nothing
  production   render the stack, copy it to a remote host and run docker compose there

Options
  --target HOST:PORT   a Prism node's REST API to scrape; repeat it (or give a comma list)
                       for every node of a cluster (env PRISM_TARGETS=a:8081,b:8081).
                       Default for local: 127.0.0.1:8081 (host.docker.internal:8081 in
                       Compose); production requires it
  --node-target HOST:PORT  a node exporter to scrape, repeatable (env PRISM_NODE_TARGETS);
                       default the stack's own
  --runbook-url URL    base of the alerts' runbook links, the address of RUNBOOK.md as
                       your operators read it (env PRISM_RUNBOOK_URL); default for local:
                       file://$REPO_ROOT/monitoring/RUNBOOK.md; production requires it
  --out DIR            where 'render' writes
  --dry-run            print what would be done, change nothing
  --host HOST          production host (env PRISM_DEPLOY_HOST)
  --user USER          ssh user (env PRISM_DEPLOY_USER)
  --ssh-key FILE       ssh identity file (env PRISM_DEPLOY_SSH_KEY)
  --remote-dir DIR     directory on the production host (env PRISM_DEPLOY_DIR, default /opt/prism-monitoring)
  --native             never use Docker for 'local' (env PRISM_MONITORING_NO_DOCKER=1)
  -h, --help           this text

Alert receivers: each is active only when configured; production needs at least one.
  webhook   PRISM_WEBHOOK_URL and PRISM_WEBHOOK_TOKEN (sent as a bearer token)
  Slack     PRISM_SLACK_API_URL (incoming-webhook URL)
  email     PRISM_EMAIL_TO, PRISM_SMTP_SMARTHOST (host:port), PRISM_SMTP_FROM,
            PRISM_SMTP_PASSWORD, optionally PRISM_SMTP_USERNAME (default the sender)
Grafana (Compose only): PRISM_GRAFANA_ADMIN_PASSWORD; production requires it, local
generates one when it is unset.
Secrets are written to files under the state directory (mode 600), never into the repository.

Environment (local)
  PRISM_MONITORING_DIR       state dir: configs, data, logs, pids (default ./.monitoring)
  PRISM_PROMETHEUS_PORT      default 9090
  PRISM_ALERTMANAGER_PORT    default 9093
  PRISM_NODE_EXPORTER_PORT   default 9100
  PRISM_SCRAPE_INTERVAL      scrape and rule evaluation interval (default 15s)
  PRISM_MONITORING_READY_TIMEOUT  seconds to wait for readiness (default 60)
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

# --- targets ---------------------------------------------------------------------------

# Appends every HOST:PORT of a comma-separated list to the array named $1.
add_targets() {
    local -n targets_out="$1"
    local item
    local -a items
    IFS=',' read -ra items <<<"$2"
    for item in "${items[@]}"; do
        item="${item#"${item%%[![:space:]]*}"}"
        item="${item%"${item##*[![:space:]]}"}"
        [[ -n $item ]] || continue
        [[ $item =~ ^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$ ]] \
            || die "scrape target '$item' is not HOST:PORT"
        targets_out+=("$item")
    done
}

# A file_sd target list: one group holding every target.
targets_json() {
    local json="" target
    for target in "$@"; do json+="${json:+, }\"$target\""; done
    printf '[{"targets": [%s]}]\n' "$json"
}

# --- receivers -------------------------------------------------------------------------

webhook_enabled() { [[ -n ${PRISM_WEBHOOK_URL:-} ]]; }
slack_enabled() { [[ -n ${PRISM_SLACK_API_URL:-} ]]; }
email_enabled() { [[ -n ${PRISM_EMAIL_TO:-} ]]; }

enabled_receivers() {
    local -a names=()
    webhook_enabled && names+=(webhook)
    slack_enabled && names+=(slack)
    email_enabled && names+=(email)
    echo "${names[*]}"
}

# Collects in the array named $1 what is wrong with the receiver settings: a receiver
# half configured, or a value that cannot be written into the configuration.
receiver_problems() {
    local -n problems_out="$1"
    local name value
    if webhook_enabled; then
        [[ $PRISM_WEBHOOK_URL =~ ^https?:// && ! $PRISM_WEBHOOK_URL =~ $UNSAFE_CHARS ]] \
            || problems_out+=("PRISM_WEBHOOK_URL is not an http(s) URL: $PRISM_WEBHOOK_URL")
        [[ -n ${PRISM_WEBHOOK_TOKEN:-} ]] \
            || problems_out+=("PRISM_WEBHOOK_URL is set but PRISM_WEBHOOK_TOKEN (its bearer token) is not")
    elif [[ -n ${PRISM_WEBHOOK_TOKEN:-} ]]; then
        problems_out+=("PRISM_WEBHOOK_TOKEN is set but PRISM_WEBHOOK_URL is not")
    fi
    if slack_enabled && [[ ! $PRISM_SLACK_API_URL =~ ^https:// ]]; then
        problems_out+=("PRISM_SLACK_API_URL is not an https URL")
    fi
    if email_enabled || [[ -n ${PRISM_SMTP_SMARTHOST:-}${PRISM_SMTP_FROM:-}${PRISM_SMTP_PASSWORD:-}${PRISM_SMTP_USERNAME:-} ]]; then
        for name in PRISM_EMAIL_TO PRISM_SMTP_SMARTHOST PRISM_SMTP_FROM PRISM_SMTP_PASSWORD; do
            [[ -n ${!name:-} ]] || problems_out+=("email alerts need $name (set PRISM_EMAIL_TO, PRISM_SMTP_SMARTHOST, PRISM_SMTP_FROM and PRISM_SMTP_PASSWORD together)")
        done
        for name in PRISM_EMAIL_TO PRISM_SMTP_SMARTHOST PRISM_SMTP_FROM PRISM_SMTP_USERNAME; do
            value="${!name:-}"
            [[ ! $value =~ $UNSAFE_CHARS ]] || problems_out+=("$name contains quotes, backslashes or spaces: $value")
        done
    fi
}

# Escapes a value for the replacement side of a sed `s|…|…|` command.
sed_replacement() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# --- rendering -------------------------------------------------------------------------

# Writes one secret file, mode 600 (empty when the value is unset: Compose mounts every file).
write_secret() {
    ( umask 077; printf '%s' "$2" >"$1" )
}

# Renders the stack into $1 (config/ and secrets/) for $2 = native|compose.
render_stack() {
    local dir="$1" mode="$2" secrets_path file integration
    local cfg="$dir/config"
    mkdir -p "$cfg/rules" "$cfg/targets" "$dir/secrets"
    chmod 700 "$dir/secrets"
    if [[ $mode == native ]]; then secrets_path="$dir/secrets"; else secrets_path=/etc/alertmanager/secrets; fi

    for file in "$REPO_ROOT"/monitoring/rules/*.yml; do
        sed -e "s|$RUNBOOK_PLACEHOLDER|$(sed_replacement "$RUNBOOK_URL")|g" "$file" >"$cfg/rules/$(basename "$file")"
    done
    targets_json "${PRISM_TARGETS_LIST[@]}" >"$cfg/targets/prism.json"
    targets_json "${NODE_TARGETS_LIST[@]}" >"$cfg/targets/node.json"

    local -a edits=(-e "s|/etc/alertmanager/secrets/|$(sed_replacement "$secrets_path")/|g")
    for integration in webhook slack email; do
        "${integration}_enabled" || edits+=(-e "/# >>> $integration\$/,/# <<< $integration\$/d")
    done
    if webhook_enabled; then
        edits+=(-e "s|$WEBHOOK_PLACEHOLDER|$(sed_replacement "$PRISM_WEBHOOK_URL")|g")
    fi
    if email_enabled; then
        edits+=(-e "s|smtp.example.invalid:587|$(sed_replacement "$PRISM_SMTP_SMARTHOST")|"
            -e "s|prism-alerts@example.invalid|$(sed_replacement "$PRISM_SMTP_FROM")|"
            -e "s|smtp-user@example.invalid|$(sed_replacement "${PRISM_SMTP_USERNAME:-$PRISM_SMTP_FROM}")|"
            -e "s|prism-oncall@example.invalid|$(sed_replacement "$PRISM_EMAIL_TO")|")
    fi
    {
        echo "# Rendered by scripts/deploy-monitoring.sh from monitoring/alertmanager.yml (receivers: $(enabled_receivers | sed 's/^$/none/'))."
        sed "${edits[@]}" "$REPO_ROOT/monitoring/alertmanager.yml"
    } >"$cfg/alertmanager.yml"
    if grep -n 'example\.invalid' "$cfg/alertmanager.yml" >&2; then
        die "rendered $cfg/alertmanager.yml still names a placeholder (lines above)"
    fi

    if [[ $mode == native ]]; then
        sed -e "s|localhost:9090|127.0.0.1:$PROMETHEUS_PORT|" \
            -e "s|alertmanager:9093|127.0.0.1:$ALERTMANAGER_PORT|g" \
            -e "s|^\(  scrape_interval:\).*|\1 $SCRAPE_INTERVAL|" \
            -e "s|^\(  evaluation_interval:\).*|\1 $SCRAPE_INTERVAL|" \
            -e "s|^\(  scrape_timeout:\).*|\1 $SCRAPE_INTERVAL|" \
            "$REPO_ROOT/monitoring/prometheus.yml" >"$cfg/prometheus.yml"
    fi

    write_secret "$dir/secrets/webhook_token" "${PRISM_WEBHOOK_TOKEN:-}"
    write_secret "$dir/secrets/slack_api_url" "${PRISM_SLACK_API_URL:-}"
    write_secret "$dir/secrets/smtp_password" "${PRISM_SMTP_PASSWORD:-}"
    write_secret "$dir/secrets/grafana_admin_password" "${PRISM_GRAFANA_ADMIN_PASSWORD:-}"
}

# Fills defaults for a deployment in $1 = native|compose and dies on bad receiver settings.
settle_settings() {
    local mode="$1"
    local -a problems=()
    if ((${#PRISM_TARGETS_LIST[@]} == 0)); then
        if [[ $mode == native ]]; then PRISM_TARGETS_LIST=(127.0.0.1:8081); else PRISM_TARGETS_LIST=(host.docker.internal:8081); fi
    fi
    if ((${#NODE_TARGETS_LIST[@]} == 0)); then
        if [[ $mode == native ]]; then NODE_TARGETS_LIST=("127.0.0.1:$NODE_EXPORTER_PORT"); else NODE_TARGETS_LIST=(node-exporter:9100); fi
    fi
    RUNBOOK_URL="${RUNBOOK_URL:-file://$REPO_ROOT/monitoring/RUNBOOK.md}"
    [[ ! $RUNBOOK_URL =~ $UNSAFE_CHARS ]] || problems+=("--runbook-url contains quotes, backslashes or spaces: $RUNBOOK_URL")
    receiver_problems problems
    if ((${#problems[@]})); then
        printf 'deploy-monitoring: error: %s\n' "${problems[@]}" >&2
        exit 1
    fi
}

describe_settings() {
    local target
    for target in "${PRISM_TARGETS_LIST[@]}"; do echo "  Prism target   http://$target/metrics"; done
    echo "  Runbook links  $RUNBOOK_URL#<alert>"
    echo "  Receivers      $(enabled_receivers | sed 's/^$/none configured: alerts show in Alertmanager only/')"
}

# --- local: native processes -----------------------------------------------------------

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
    until curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
        pid_alive "$pidfile" || die "$name exited; see $STATE_DIR/logs/$name.log"
        (( waited++ < READY_TIMEOUT_SECONDS * 4 )) || die "$name not ready after ${READY_TIMEOUT_SECONDS}s ($url)"
        sleep 0.25
    done
    log "$name ready"
}

require_binary() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found; install it with: apt-get install -y --no-install-recommends prometheus prometheus-alertmanager prometheus-node-exporter"
}

# The URL of a Prometheus web page that answers 200: Prometheus' own UI serves /$2,
# Debian's build (no bundled React UI) only /classic/$2; the API always answers.
prometheus_page() {
    local base="$1" page="$2" path
    for path in "/$page" "/classic/$page"; do
        if [[ $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$base$path") == 200 ]]; then
            echo "$base$path"
            return
        fi
    done
    echo "$base/api/v1/$page"
}

print_grafana_import() {
    cat <<EOF
Grafana: not started. Without a Docker engine this script runs no Grafana (it is part of
the Compose stack only). To load the dashboard into a Grafana you already run, set
GRAFANA_URL (e.g. http://grafana.internal:3000) and GRAFANA_TOKEN (a service-account token
allowed to write dashboards), then run:
  printf '{"overwrite": true, "dashboard": %s}' "\$(cat '$DASHBOARD')" | curl -fsS -X POST -H "Authorization: Bearer \$GRAFANA_TOKEN" -H 'Content-Type: application/json' --data-binary @- "\$GRAFANA_URL/api/dashboards/db"
EOF
}

start_native() {
    require_binary prometheus
    require_binary prometheus-alertmanager
    settle_settings native
    if [[ $DRY_RUN == 1 ]]; then
        echo "[dry-run] render $STATE_DIR/config and $STATE_DIR/secrets:"
        describe_settings
    else
        mkdir -p "$STATE_DIR/data/prometheus" "$STATE_DIR/data/alertmanager" "$STATE_DIR/logs" "$STATE_DIR/pids"
        render_stack "$STATE_DIR" native
        echo native >"$STATE_DIR/mode"
    fi
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
    [[ $DRY_RUN == 1 ]] && return
    local prometheus="http://127.0.0.1:$PROMETHEUS_PORT"
    cat <<EOF
Prism monitoring is running (native processes, state in $STATE_DIR):
  Prometheus     $(prometheus_page "$prometheus" graph)
  Targets        $(prometheus_page "$prometheus" targets)
  Alerts         $(prometheus_page "$prometheus" alerts)
  Alertmanager   http://127.0.0.1:$ALERTMANAGER_PORT
EOF
    [[ -f $STATE_DIR/pids/node-exporter.pid ]] && echo "  Node exporter  http://127.0.0.1:$NODE_EXPORTER_PORT/metrics"
    describe_settings
    print_grafana_import
    echo "Stop with: $0 stop"
}

# --- local: Docker Compose -------------------------------------------------------------

start_compose() {
    settle_settings compose
    if [[ -z ${PRISM_GRAFANA_ADMIN_PASSWORD:-} ]]; then
        PRISM_GRAFANA_ADMIN_PASSWORD="$(head -c 18 /dev/urandom | base64)"
        log "PRISM_GRAFANA_ADMIN_PASSWORD unset: generated one, in $STATE_DIR/secrets/grafana_admin_password"
    fi
    if [[ $DRY_RUN == 1 ]]; then
        echo "[dry-run] render $STATE_DIR/config and $STATE_DIR/secrets:"
        describe_settings
    else
        render_stack "$STATE_DIR" compose
        echo docker >"$STATE_DIR/mode"
    fi
    PRISM_MONITORING_DIR="$STATE_DIR" run docker compose -f "$COMPOSE_FILE" up -d
    [[ $DRY_RUN == 1 ]] && return
    cat <<EOF
Prism monitoring is running (docker compose project prism-monitoring):
  Prometheus     http://127.0.0.1:9090
  Alertmanager   http://127.0.0.1:9093
  Grafana        http://127.0.0.1:3000  (user admin, dashboard "Prism DNS Overview")
EOF
    describe_settings
    echo "Stop with: $0 stop"
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

render_only() {
    [[ -n $RENDER_DIR ]] || die "render needs --out DIR"
    local mode=compose
    [[ $FORCE_NATIVE == 1 ]] && mode=native
    settle_settings "$mode"
    render_stack "$RENDER_DIR" "$mode"
    echo "Rendered the $mode configuration into $RENDER_DIR:"
    describe_settings
}

# --- production ------------------------------------------------------------------------

deploy_production() {
    local -a problems=()
    [[ -n $DEPLOY_HOST ]] || problems+=("production needs a host: --host HOST or PRISM_DEPLOY_HOST")
    ((${#PRISM_TARGETS_LIST[@]})) || problems+=("production needs the Prism nodes to scrape: --target HOST:PORT once per node, or PRISM_TARGETS=a:8081,b:8081")
    [[ -n $RUNBOOK_URL ]] || problems+=("production needs --runbook-url URL (or PRISM_RUNBOOK_URL): where RUNBOOK.md is published for the alerts' runbook links")
    [[ -n $(enabled_receivers) ]] || problems+=("production needs at least one alert receiver: PRISM_WEBHOOK_URL with PRISM_WEBHOOK_TOKEN, PRISM_SLACK_API_URL, or PRISM_EMAIL_TO with PRISM_SMTP_SMARTHOST, PRISM_SMTP_FROM and PRISM_SMTP_PASSWORD")
    [[ -n ${PRISM_GRAFANA_ADMIN_PASSWORD:-} ]] || problems+=("production needs PRISM_GRAFANA_ADMIN_PASSWORD (Grafana's admin password)")
    receiver_problems problems
    if ((${#problems[@]})); then
        printf 'deploy-monitoring: error: %s\n' "${problems[@]}" >&2
        die "nothing was deployed"
    fi
    settle_settings compose

    local destination="${DEPLOY_USER:+$DEPLOY_USER@}$DEPLOY_HOST" bundle
    local -a ssh_opts=(-o BatchMode=yes)
    [[ -z $DEPLOY_SSH_KEY ]] || ssh_opts+=(-i "$DEPLOY_SSH_KEY")
    bundle="$(mktemp -d)"
    # shellcheck disable=SC2064 # the bundle path is fixed now
    trap "rm -rf '$bundle'" EXIT
    render_stack "$bundle/.monitoring" compose
    echo "Rendered for $destination:"
    describe_settings
    run ssh "${ssh_opts[@]}" "$destination" "mkdir -p '$DEPLOY_DIR'"
    run scp "${ssh_opts[@]}" -r "$REPO_ROOT/monitoring" "$COMPOSE_FILE" "$destination:$DEPLOY_DIR/"
    run scp "${ssh_opts[@]}" -rp "$bundle/.monitoring" "$destination:$DEPLOY_DIR/"
    run ssh "${ssh_opts[@]}" "$destination" \
        "cd '$DEPLOY_DIR' && docker compose -f docker-compose.monitoring.yml up -d"
    [[ $DRY_RUN == 1 ]] && { echo "[dry-run] nothing was changed on $destination"; return; }
    echo "Deployed to $destination:$DEPLOY_DIR (Prometheus 127.0.0.1:9090 on that host; reach it through an ssh tunnel)."
}

main() {
    local command=""
    add_targets PRISM_TARGETS_LIST "${PRISM_TARGETS:-}"
    add_targets NODE_TARGETS_LIST "${PRISM_NODE_TARGETS:-}"
    while (($#)); do
        case "$1" in
            local|stop|status|render|production) command="$1" ;;
            --target) add_targets PRISM_TARGETS_LIST "${2:?--target needs HOST:PORT}"; shift ;;
            --node-target) add_targets NODE_TARGETS_LIST "${2:?--node-target needs HOST:PORT}"; shift ;;
            --runbook-url) RUNBOOK_URL="${2:?--runbook-url needs a URL}"; shift ;;
            --out) RENDER_DIR="${2:?--out needs a directory}"; shift ;;
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
        render) render_only ;;
        production) deploy_production ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
