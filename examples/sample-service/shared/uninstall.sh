#!/bin/sh
# OpenWUA sample uninstaller.
#
#   uninstall.sh COMPONENT
#
# Removes $OPENWUA_SANDBOX/COMPONENT, which install.sh made.
set -eu

. "$(dirname "$0")/sandbox.sh"

[ $# -eq 1 ] || fail "usage: uninstall.sh COMPONENT"
component=$1
case $component in
"" | . | .. | */*) fail "'$component' is not a component name" ;;
esac
rm -rf "${sandbox:?}/$component"
log "uninstall $component"
echo "uninstalled $component"
