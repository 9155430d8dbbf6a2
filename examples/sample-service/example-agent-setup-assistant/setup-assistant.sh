#!/bin/sh
# Example Agent setup assistant. It asks for the management server's name
# (the update says can_request_user_input = true).
set -eu

. "$(dirname "$0")/sandbox.sh"

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
