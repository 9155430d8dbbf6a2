#!/bin/sh
# Example Agent setup assistant. It asks for the management server's name
# (the update says can_request_user_input = true): through the agent's
# answer channel when it gives one (OPENWUA_PROMPT_FD), else on standard
# input. An empty answer means none.
set -eu

. "$(dirname "$0")/sandbox.sh"

question='Management server for Example Agent'
if [ -n "${OPENWUA_PROMPT_FD:-}" ]; then
    # An interactive install through the agent: one JSON question line out
    # on the agent's answer channel, one answer line back (docs/prompts.md).
    printf '{"text":"%s (a host name, or none)","kind":"text","default":"none"}\n' "$question" >&"$OPENWUA_PROMPT_FD"
    if ! read -r server <&"$OPENWUA_PROMPT_FD"; then
        echo "setup-assistant.sh: the install was aborted before the question was answered" >&2
        exit 1
    fi
else
    printf '%s [none]: ' "$question"
    if ! read -r server; then
        echo
        echo "setup-assistant.sh: no answer on standard input" >&2
        exit 1
    fi
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
