#!/bin/sh
# Example Agent setup assistant. It asks for the management server's name
# (the update says can_request_user_input = true).
set -eu

fail() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

# The agent runs installers with OPENWUA_SANDBOX set to a directory of
# their own; these samples write nowhere else and refuse to run without it.
sandbox=${OPENWUA_SANDBOX:-}
[ -n "$sandbox" ] || fail "OPENWUA_SANDBOX is not set; refusing to run outside a sandbox"
case $sandbox in
/*) ;;
*) fail "OPENWUA_SANDBOX must be an absolute path, not '$sandbox'" ;;
esac
[ -d "$sandbox" ] || fail "OPENWUA_SANDBOX ($sandbox) is not a directory"

log() {
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$sandbox/history.log"
}

printf 'Management server for Example Agent [none]: '
if ! read -r server; then
    echo
    echo "setup-assistant.sh: no answer on standard input" >&2
    exit 1
fi
case $server in
"") server=none ;;
*[!A-Za-z0-9.:-]*) fail "'$server' is not a host name" ;;
esac

target=$sandbox/example-agent
mkdir -p "$target"
printf 'server=%s\n' "$server" >"$target/management.conf"
log "configure example-agent server=$server"
echo "Example Agent will report to: $server"
