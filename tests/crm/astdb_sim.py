"""A simulated Asterisk whose AstDB answers DBGetTree/DBPut/DBDel/DBDelTree like Asterisk 22 (ami-actions-misc.txt),
with a real AMIClient and PBX logged in to it over 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass, field

from contactd.simulator.ami_server import (
    ActionReply,
    AMIAction,
    SimulatedAMIServer,
    error,
    list_reply,
    success,
)
from contactd.telephony.ami import AMIClient
from contactd.telephony.pbx import PBX


@dataclass
class AstDB:
    server: SimulatedAMIServer
    ami: AMIClient
    pbx: PBX
    data: dict[tuple[str, str], str] = field(default_factory=dict)

    def family(self, family: str) -> dict[str, str]:
        return {k: v for (f, k), v in self.data.items() if f == family}

    def actions(self, name: str) -> list[str]:
        """`Family/Key` of every `name` action the server received, in order."""
        return [f"{m.get('Family')}/{m.get('Key') or ''}" for m in self.server.received
                if (m.get("Action") or "").lower() == name.lower()]

    def install(self) -> None:
        def put(action: AMIAction) -> ActionReply:
            msg = action.message
            self.data[(msg.get("Family") or "", msg.get("Key") or "")] = msg.get("Val") or ""
            return success("Updated database successfully")

        def delete(action: AMIAction) -> ActionReply:
            msg = action.message
            if self.data.pop((msg.get("Family") or "", msg.get("Key") or ""), None) is None:
                return error("Database entry not found")
            return success("Key deleted successfully")

        def deltree(action: AMIAction) -> ActionReply:
            family = action.message.get("Family") or ""
            keys = [k for k in self.data if k[0] == family]
            if not keys:
                return error("Database entry not found")
            for k in keys:
                del self.data[k]
            return success("Key tree deleted successfully")

        def gettree(action: AMIAction) -> ActionReply:
            family = action.message.get("Family") or ""
            items = [[("Event", "DBGetTreeResponse"), ("Key", f"/{f}/{k}"), ("Val", v)]
                     for (f, k), v in sorted(self.data.items()) if f == family]
            if not items:
                return error("Database entry not found")
            return list_reply("DBGetTreeComplete", items, message="Result will follow")

        self.server.register_action("DBGetTree", gettree)
        self.server.register_action("DBPut", put)
        self.server.register_action("DBDel", delete)
        self.server.register_action("DBDelTree", deltree)


async def start_astdb() -> AstDB:
    server = SimulatedAMIServer(username="contactd", secret="s3cret-blacklist", port=0)
    await server.start()
    ami = AMIClient("127.0.0.1", server.port, "contactd", "s3cret-blacklist", ping_interval=30.0,
                    action_timeout=2.0, reconnect_min_delay=0.05, reconnect_max_delay=0.2)
    sim = AstDB(server, ami, PBX(ami))
    sim.install()
    await ami.start()
    await ami.wait_connected(5.0)
    return sim


async def stop_astdb(sim: AstDB) -> None:
    await sim.ami.close()
    await sim.server.stop()
