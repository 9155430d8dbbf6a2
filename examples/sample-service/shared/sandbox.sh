# Sourced by the sample installers: the sandbox check and logging they share.
# The agent runs installers with OPENWUA_SANDBOX set to a directory of their
# own; these samples write nowhere else and refuse to run without it.

fail() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

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
