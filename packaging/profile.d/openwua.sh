# OpenWUA's login message for interactive shells, where pam_motd and
# /etc/update-motd.d are not used: /etc/profile.d/openwua.sh. It prints
# `wua status --brief` (a pending restart, updates waiting for an
# administrator at a terminal) and nothing when there is nothing to say or
# no agent. Where pam_motd runs 85-openwua at login (Debian's login and
# sshd), it stays quiet rather than say it twice. It never starts the agent:
# under systemd it speaks only while wua-agent.service runs, and it gives
# the agent 2 seconds.
case $- in
*i*)
    if [ -S "${OPENWUA_SOCKET:-/run/openwua/agent.sock}" ] &&
        command -v wua >/dev/null 2>&1 &&
        { [ -n "${OPENWUA_SOCKET:-}" ] || [ ! -x /etc/update-motd.d/85-openwua ] ||
            ! grep -qs '^[^#]*pam_motd' /etc/pam.d/login /etc/pam.d/sshd; } &&
        { [ -n "${OPENWUA_SOCKET:-}" ] || [ ! -d /run/systemd/system ] ||
            [ ! -f /sys/fs/cgroup/cgroup.controllers ] ||
            [ -d /sys/fs/cgroup/system.slice/wua-agent.service ]; }; then
        timeout 2 wua status --brief 2>/dev/null
    fi
    ;;
esac
:
