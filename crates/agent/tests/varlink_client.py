"""An independent Varlink client (the `varlink` package from PyPI) against
a real wua-agent: introspect org.openwua.Agent, then search.

Usage: varlink_client.py SOCKET. Prints one JSON object for the Rust test.
"""

import json
import sys

import varlink


def main(socket_path):
    client = varlink.Client(address="unix:" + socket_path)
    info = client.get_interface("org.openwua.Agent")
    with client.open("org.openwua.Agent", namespaced=False) as agent:
        agent_info = agent.GetAgentInfo()
        result = agent.Search("IsInstalled=0 and Type='Software'", None, "python-varlink-test")
        try:
            agent.Search("IsInstalled=2", None, None)
            refused = None
        except varlink.VarlinkError as error:
            refused = {"error": error.error(), "parameters": error.parameters()}
    print(json.dumps({
        "interface": info.name,
        "methods": sorted(name for name in info.members if name[0].isupper()),
        "agentInfo": agent_info,
        "result": result,
        "refused": refused,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
