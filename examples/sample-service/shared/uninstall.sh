#!/bin/sh
# OpenWUA sample uninstaller.
#
#   uninstall.sh COMPONENT
#
# Removes $OPENWUA_SANDBOX/COMPONENT, which install.sh made.
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

[ $# -eq 1 ] || fail "usage: uninstall.sh COMPONENT"
component=$1
case $component in
"" | . | .. | */*) fail "'$component' is not a component name" ;;
esac
rm -rf "${sandbox:?}/$component"
log "uninstall $component"
echo "uninstalled $component"
