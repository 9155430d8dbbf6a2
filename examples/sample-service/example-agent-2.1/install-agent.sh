#!/bin/sh
# Example Agent 2.1 installer. It asks one question on standard input
# (the update says can_request_user_input = true), so the agent runs it
# only for an interactive user; with no answer to read it fails.
set -eu

. "$(dirname "$0")/sandbox.sh"

printf 'Example Agent 2.1 can upload anonymous diagnostics. Enable it? [y/N] '
if ! read -r answer; then
    echo
    echo "install-agent.sh: no answer on standard input" >&2
    exit 1
fi
case $answer in
y | Y | yes | YES) diagnostics=on ;;
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
