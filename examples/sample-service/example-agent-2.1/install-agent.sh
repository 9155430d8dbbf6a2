#!/bin/sh
# Example Agent 2.1 installer. It asks one question (the update says
# can_request_user_input = true): through the agent's answer channel when
# the agent gives it one (OPENWUA_PROMPT_FD), else on standard input; with
# no answer to read it fails. An empty answer means no.
set -eu

. "$(dirname "$0")/sandbox.sh"

question='Example Agent 2.1 can upload anonymous diagnostics. Enable it?'
if [ -n "${OPENWUA_PROMPT_FD:-}" ]; then
    # An interactive install through the agent: one JSON question line out
    # on the agent's answer channel, one answer line back (docs/prompts.md).
    printf '{"text":"%s","kind":"boolean","default":"false"}\n' "$question" >&"$OPENWUA_PROMPT_FD"
    if ! read -r answer <&"$OPENWUA_PROMPT_FD"; then
        echo "install-agent.sh: the install was aborted before the question was answered" >&2
        exit 1
    fi
else
    printf '%s [y/N] ' "$question"
    if ! read -r answer; then
        echo
        echo "install-agent.sh: no answer on standard input" >&2
        exit 1
    fi
fi
case $answer in
y | Y | yes | YES | true) diagnostics=on ;;
*) diagnostics=off ;;
esac

target=$sandbox/example-agent
mkdir -p "$target"
printf '2.1.0\n' >"$target/VERSION"
printf 'diagnostics=%s\n' "$diagnostics" >"$target/agent.conf"
log "install example-agent 2.1.0 (diagnostics $diagnostics)"
echo "installed example-agent 2.1.0; diagnostics $diagnostics"
# The running agent switches to the new version when the machine restarts:
# 194 is WUA's 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) as an 8-bit exit status.
exit 194
