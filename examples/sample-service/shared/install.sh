#!/bin/sh
# OpenWUA sample installer.
#
#   install.sh [--reboot] COMPONENT VERSION [FILE...]
#
# Records VERSION in $OPENWUA_SANDBOX/COMPONENT/VERSION and copies each FILE
# (a payload file beside this script) there. With --reboot it exits 194,
# which the update's exit-code map reads as "succeeded, reboot required".
set -eu

. "$(dirname "$0")/sandbox.sh"

reboot=no
if [ "${1:-}" = --reboot ]; then
    reboot=yes
    shift
fi
[ $# -ge 2 ] || fail "usage: install.sh [--reboot] COMPONENT VERSION [FILE...]"
component=$1
version=$2
shift 2
case $component in
"" | . | .. | */*) fail "'$component' is not a component name" ;;
esac

here=$(dirname "$0")
target=$sandbox/$component
mkdir -p "$target"
for file in "$@"; do
    case $file in
    "" | . | .. | */*) fail "'$file' is not a payload file name" ;;
    esac
    cp "$here/$file" "$target/$file"
done
printf '%s\n' "$version" >"$target/VERSION"
log "install $component $version"
echo "installed $component $version"
if [ "$reboot" = yes ]; then
    echo "a restart finishes the installation"
    # WUA's 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) as an 8-bit exit status:
    # 3010 mod 256. A Windows script's "exit 3010" ends the same way here.
    exit 194
fi
