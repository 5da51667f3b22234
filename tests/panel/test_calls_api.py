"""Call buttons: JSON endpoints act for the agent's own extension through services.call_control/harassment."""

from __future__ import annotations

from dataclasses import dataclass

from panel_helpers import PASSWORD, Panel


class CallControlError(Exception):
    pass


class NotOnCall(CallControlError):
    pass


class FakeCallControl:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def click_to_call(self, agent_ext: str, number: str) -> None:
        self.calls.append(("click_to_call", agent_ext, number))

    async def blind_transfer(self, agent_ext: str, target: str) -> None:
        self.calls.append(("blind_transfer", agent_ext, target))

    async def attended_transfer(self, agent_ext: str, target: str) -> None:
        self.calls.append(("attended_transfer", agent_ext, target))

    async def hangup(self, agent_ext: str) -> None:
        raise NotOnCall("통화 중이 아닙니다")

    async def hold(self, agent_ext: str) -> None:
        self.calls.append(("hold", agent_ext))

    async def pickup(self, agent_ext: str, ringing_ext: str) -> None:
        self.calls.append(("pickup", agent_ext, ringing_ext))

    async def set_away(self, agent_ext: str, away: bool, reason: str) -> None:
        self.calls.append(("set_away", agent_ext, away, reason))


@dataclass
class LiveCall:
    linkedid: str


class FakeTracker:
    def call_for_extension(self, ext: str) -> LiveCall | None:
        return LiveCall("call-1") if ext == "1001" else None


class FakeHarassment:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def warn_and_hangup(self, linkedid: str, kind: str, agent_user_id: int, agent_extension: str) -> None:
        self.calls.append((linkedid, kind, agent_user_id, agent_extension))


async def test_buttons_reach_call_control_for_my_extension(make_panel, db) -> None:
    control, harassment = FakeCallControl(), FakeHarassment()
    panel: Panel = await make_panel(db, services_extra={"call_control": control, "harassment": harassment,
                                                        "tracker": FakeTracker()})
    kim = await panel.login("kim")
    assert await kim.post_json("/api/calls/dial", {"number": "010-1234-5678"}) == (200, {"ok": True})
    assert await kim.post_json("/api/calls/transfer", {"target": "1002", "kind": "attended"}) == (200, {"ok": True})
    assert (await kim.post_json("/api/calls/transfer", {"target": "1002"}))[0] == 200
    assert (await kim.post_json("/api/calls/pickup", {"extension": "1003"}))[0] == 200
    assert (await kim.post_json("/api/calls/away", {"away": True, "reason": "식사"}))[0] == 200
    assert control.calls == [("click_to_call", "1001", "01012345678"), ("attended_transfer", "1001", "1002"),
                             ("blind_transfer", "1001", "1002"), ("pickup", "1001", "1003"),
                             ("set_away", "1001", True, "식사")]
    status, body = await kim.post_json("/api/calls/hangup")
    assert status == 409 and body["error"] == "통화 중이 아닙니다"
    # Bad input is 422 and never reaches the PBX.
    control.calls.clear()
    for path, payload in (("/api/calls/dial", {"number": "abc"}), ("/api/calls/transfer", {"target": "12345"}),
                          ("/api/calls/transfer", {"target": "1001"}), ("/api/calls/away", {"away": "yes"}),
                          ("/api/calls/harassment", {"kind": "rude"})):
        status, body = await kim.post_json(path, payload)
        assert status == 422 and body["error"], (path, body)
    assert control.calls == []
    # Harassment block acts on my live call.
    assert (await kim.post_json("/api/calls/harassment", {"kind": "sexual"}))[0] == 200
    assert harassment.calls == [("call-1", "sexual", panel.users["kim"].id, "1001")]
    lee = await panel.login("lee")
    status, body = await lee.post_json("/api/calls/harassment", {"kind": "abuse"})
    assert status == 409 and "통화 중이 아닙니다" in body["error"]
    # Not implemented by the service → 503, no crash.
    assert (await kim.post_json("/api/calls/unhold"))[0] == 503


async def test_without_extension_or_call_control(panel: Panel) -> None:
    await panel.accounts.create_user("noext", PASSWORD, "agent")
    noext = await panel.login("noext")
    status, body = await noext.post_json("/api/calls/dial", {"number": "01012345678"})
    assert status == 422 and "내선번호" in body["error"]
    kim = await panel.login("kim")
    status, body = await kim.post_json("/api/calls/dial", {"number": "01012345678"})
    assert status == 503
    assert (await kim.post_json("/api/calls/dial", {"number": "01012345678"}, csrf=False))[0] == 403


async def test_pbx_link_down_is_a_clear_503_not_a_crash(make_panel, db) -> None:
    from contactd.telephony.ami import AMIConnectionError

    class LinkDown(FakeCallControl):
        async def hold(self, agent_ext: str) -> None:
            raise AMIConnectionError("not connected to Asterisk")

    panel: Panel = await make_panel(db, services_extra={"call_control": LinkDown(), "tracker": FakeTracker()})
    kim = await panel.login("kim")
    status, body = await kim.post_json("/api/calls/hold")
    assert status == 503 and "교환기(PBX)와 연결이 끊어져" in body["error"]
