"""The dialplan and sample configs we ship: every place contactd sends a call exists, with contactd's own names.

Names come from contactd/config.py defaults, so renaming a queue or context on one side only fails here rather
than on a live call. The extensions.conf reader itself is tested at the bottom.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contactd.config import AGIConfig, AMIConfig, PBXConfig
from contactd.ivr.prompts import PROMPTS_DIR, load_manifest
from contactd.ivr.session import IVR_DONE_KEY
from contactd.telephony.dialplan import (
    Dialplan,
    DialplanError,
    Step,
    extension_matches,
    load_dialplan,
    parse_dialplan,
)

ROOT = Path(__file__).resolve().parents[2]
CONTACTD_CONF = ROOT / "dialplans" / "extensions_contactd.conf"
ASTERISK_DIR = ROOT / "asterisk"
PBX = PBXConfig()


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return parse_dialplan(CONTACTD_CONF.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------- a tiny dialplan walker
# Follows one channel through the dialplan the way Asterisk would, with the test deciding how each GotoIf /
# ExecIf condition comes out (by a substring of its expression). It records the applications that "run".

def _walk(plan: Dialplan, context: str, exten: str, conditions: dict[str, bool], max_steps: int = 100) -> list[str]:
    ran: list[str] = []
    priority: int | str = 1
    for _ in range(max_steps):
        ext = plan.find(context, exten)
        assert ext is not None, f"no extension {exten} in {context}"
        step = ext.step(priority)
        if step is None:
            return ran + ["<end of extension>"]
        nxt = step.priority + 1
        if step.app in ("GotoIf", "ExecIf"):
            condition, _, branches = step.args.partition("?")
            matches = [value for key, value in conditions.items() if key in condition]
            assert len(matches) == 1, f"test must decide {condition!r} exactly once ({context},{exten},{step.priority})"
            options = Step(0, None, "", branches, 0).arg_list(":")  # "Set(X=a:b)" is one branch
            true_branch, false_branch = options[0], (options[1] if len(options) > 1 else "")
            branch = true_branch if matches[0] else false_branch
            if step.app == "ExecIf":
                if branch:
                    ran.append(branch)
                priority = nxt
                continue
            if not branch:
                priority = nxt
                continue
            context, exten, priority = _target(context, exten, branch)
            continue
        ran.append(f"{step.app}({step.args})")
        if step.app == "Goto":
            context, exten, priority = _target(context, exten, step.args)
            continue
        if step.app == "Hangup":
            return ran
        priority = nxt
    raise AssertionError(f"dialplan loop? {ran[-10:]}")


def _target(context: str, exten: str, spec: str) -> tuple[str, str, int | str]:
    parts = [p.strip().replace("${EXTEN}", exten) for p in spec.split(",")]
    if len(parts) == 1:
        prio = parts[0]
    elif len(parts) == 2:
        exten, prio = parts
    else:
        context, exten, prio = parts
    return context, exten, int(prio) if prio.isdigit() else prio


# ------------------------------------------------------------------------------- contactd's contexts


def test_harassment_warning_targets_exist_and_end_the_call(plan: Dialplan) -> None:
    for kind in ("abuse", "sexual"):
        # contactd: AMI Redirect Context=contactd-warning Exten=<kind> Priority=1
        assert plan.has_extension(PBX.warning_context, kind, 1)
        assert _walk(plan, PBX.warning_context, kind, {}) == [
            "Answer()", f"Playback(contactd/warning-{kind})", "Hangup()",
        ]
    assert not plan.has_extension(PBX.warning_context, "insult")


@pytest.mark.parametrize("ext", ["1", "42", "100", "1001", "1003", "9999", "0000"])
def test_every_agent_extension_of_1_to_4_digits_rings_the_phone(plan: Dialplan, ext: str) -> None:
    # Queue members are Local/<ext>@contactd-agents; transfers (tT) must be allowed for AMI Atxfer.
    assert plan.has_extension(PBX.agent_context, ext, 1)
    assert _walk(plan, PBX.agent_context, ext, {})[0] == f"Dial({PBX.channel_tech}/${{EXTEN}},30,tT)"


@pytest.mark.parametrize("ext", ["10000", "01012345678", "s", "", "12a"])
def test_agent_context_rejects_what_is_not_an_extension(plan: Dialplan, ext: str) -> None:
    assert not plan.has_extension(PBX.agent_context, ext)


def test_click_to_call_rings_the_customer_through_the_trunk_with_the_shop_number(plan: Dialplan) -> None:
    ran = _walk(plan, PBX.click_to_call_context, "01012345678", {"CONTACTD_SHOP_CID": True})
    assert ran[0] == "Set(CALLERID(num)=${CONTACTD_SHOP_CID})"
    assert ran[1] == "Dial(PJSIP/${EXTEN}@trunk,60,tT)"
    # With no shop number configured the caller ID is left alone (the trunk's default).
    assert _walk(plan, PBX.click_to_call_context, "0212345678", {"CONTACTD_SHOP_CID": False})[0].startswith("Dial(")
    assert "CONTACTD_SHOP_CID" in plan.globals


@pytest.mark.parametrize("ext", ["7", "1002", "9999"])
def test_click_to_call_to_a_short_number_is_an_internal_call(plan: Dialplan, ext: str) -> None:
    ran = _walk(plan, PBX.click_to_call_context, ext, {})
    assert ran[0] == f"Goto({PBX.agent_context},${{EXTEN}},1)"
    assert ran[1].startswith("Dial(PJSIP/${EXTEN},")
    assert not any("@trunk" in app for app in ran)


def test_hold_and_pickup_targets(plan: Dialplan) -> None:
    assert plan.has_extension("contactd-hold", "s", 1)
    assert "MusicOnHold(default)" in _walk(plan, "contactd-hold", "s", {})
    for ext in ("1001", "7", "12345"):
        assert _walk(plan, "contactd-pickup", ext, {})[0] == f"Pickup(${{EXTEN}}@{PBX.agent_context})"


INBOUND_DECISIONS = {"CALLERID(num)}\" = \"\"": False, "+82": False, "CONTACTD_AGI}\" = \"\"": False}


# The GotoIf after AGI(): "${CONTACTD_IVR_DONE}" != "1" is True when the IVR did NOT set its done flag.
IVR_NOT_DONE = "CONTACTD_IVR_DONE"


@pytest.mark.parametrize("dialled", ["0212345678", "15881234", "+82212345678", "s"])
def test_inbound_runs_the_contactd_ivr(plan: Dialplan, dialled: str) -> None:
    ran = _walk(plan, "contactd-inbound", dialled,
                {**INBOUND_DECISIONS, "DB_EXISTS": False, IVR_NOT_DONE: False})
    assert "Answer()" in ran
    assert "AGI(agi://${CONTACTD_AGI}/inbound)" in ran
    # The IVR set CONTACTD_IVR_DONE=1 (queued / ended the call): the dialplan only hangs up, no second queue entry.
    assert ran[-1] == "Hangup()"
    assert not any(app.startswith("Queue(") for app in ran)
    if dialled != "s":  # the dialled number is kept for the IVR
        assert "Set(__CONTACTD_DID=${EXTEN})" in ran


def test_inbound_queues_the_caller_when_the_ivr_did_not_finish(plan: Dialplan) -> None:
    # AGI() returned without CONTACTD_IVR_DONE=1: contactd was unreachable (AGISTATUS=FAILURE) or its socket
    # closed mid-script (Asterisk says SUCCESS then). Either way the caller goes to the agents.
    ran = _walk(plan, "contactd-inbound", "0212345678",
                {**INBOUND_DECISIONS, "DB_EXISTS": False, IVR_NOT_DONE: True})
    agi = ran.index("AGI(agi://${CONTACTD_AGI}/inbound)")
    queue = next(i for i, app in enumerate(ran) if app.startswith("Queue("))
    assert agi < queue
    assert ran[queue].removeprefix("Queue(").split(",")[0] == PBX.queue
    assert ran[-1] == "Hangup()"
    # The condition really is the flag the IVR sets (contactd/ivr/session.py mark_done), not AGISTATUS.
    gotoifs = [s for _, _, s in plan.steps() if s.app == "GotoIf" and "IVR_DONE" in s.args]
    assert gotoifs and all('"${CONTACTD_IVR_DONE}" != "1"' in s.args for s in gotoifs)
    assert f"CONTACTD_{IVR_DONE_KEY}" == "CONTACTD_IVR_DONE"  # the name the IVR sets (CallSession.mark_done)
    assert not any(s.app == "GotoIf" and "AGISTATUS" in s.args for _, _, s in plan.steps())


def test_blacklisted_caller_hears_blocked_and_never_reaches_contactd(plan: Dialplan) -> None:
    ran = _walk(plan, "contactd-inbound", "0212345678", {**INBOUND_DECISIONS, "DB_EXISTS": True})
    assert ran[-2:] == ["Playback(contactd/blocked)", "Hangup()"]
    assert not any(app.startswith(("AGI(", "Queue(")) for app in ran)
    lookups = [s for _, _, s in plan.steps() if "DB_EXISTS" in s.args]
    assert lookups and all(f"DB_EXISTS({PBX.blacklist_family}/${{CALLERID(num)}})" in s.args for s in lookups)


def test_agi_address_defaults_to_contactd_agi_port(plan: Dialplan) -> None:
    assert plan.globals["CONTACTD_AGI"] == f"127.0.0.1:{AGIConfig().port}"
    # An extensions.conf with its own [globals] hides ours: the inbound context has the same fallback.
    assert any(f"Set(CONTACTD_AGI=127.0.0.1:{AGIConfig().port})" in s.args for _, _, s in plan.steps())


def test_every_goto_lands_on_an_existing_extension(plan: Dialplan, full_plan: Dialplan) -> None:
    for dialplan, minimum in ((plan, 6), (full_plan, 11)):
        checked = 0
        for ctx, ext, step in dialplan.steps():
            if step.app != "Goto":
                continue
            # A sample number stands in for ${EXTEN} in pattern-relative gotos.
            context, exten, prio = _target(ctx.name, "1001" if ext.is_pattern else ext.name, step.args)
            assert dialplan.has_extension(context, exten, prio), (ctx.name, ext.name, step)
            checked += 1
        assert checked >= minimum


def test_every_contactd_sound_played_is_in_the_prompt_manifest(plan: Dialplan) -> None:
    manifest = load_manifest(PROMPTS_DIR / "manifest.toml")
    played = {m.group(1) for _, _, s in plan.steps() for m in re.finditer(r"contactd/([a-z0-9-]+)", s.args)}
    assert {"blocked", "warning-abuse", "warning-sexual"} <= played
    assert played <= set(manifest)


# ------------------------------------------------------------------------------- the sample Asterisk configs


def _conf_sections(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Asterisk .conf as (section, [(key, value)]) in file order; repeated sections/keys are kept."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            sections.append((header.group(1), []))
            continue
        key, _, value = line.partition("=")
        sections[-1][1].append((key.strip(), value.lstrip(">").strip()))
    return sections


def _section(path: Path, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for section, items in _conf_sections(path):
        if section == name:
            for key, value in items:
                out.setdefault(key, []).append(value)
    assert out, f"[{name}] missing in {path.name}"
    return out


@pytest.fixture(scope="module")
def full_plan() -> Dialplan:
    # The sample extensions.conf #includes our file the way /etc/asterisk would after copying both there.
    return load_dialplan(ASTERISK_DIR / "extensions.conf", search_dirs=[ROOT / "dialplans"])


def test_queues_conf_has_contactds_queues_with_dynamic_members(plan: Dialplan) -> None:
    # contactd's online/offline is QueueAdd/QueueRemove, and Asterisk refuses to remove a static member:
    # agents must be dynamic members, persisted across Asterisk restarts.
    assert _section(ASTERISK_DIR / "queues.conf", "general")["persistentmembers"] == ["yes"]
    text = (ASTERISK_DIR / "queues.conf").read_text()
    for queue in (PBX.queue, PBX.vip_queue):
        conf = _section(ASTERISK_DIR / "queues.conf", queue)
        assert conf["strategy"] == ["ringall"]
        assert "member" not in conf
    examples = re.findall(r"^;member => (.+?) +\(added by contactd\)$", text, flags=re.M)
    assert len(examples) >= 3
    for example in examples:
        interface, _penalty, _name, state_interface = example.split(",")
        ext, _, context = interface.removeprefix("Local/").partition("@")
        assert context == PBX.agent_context
        assert plan.has_extension(context, ext, 1)
        assert state_interface == f"{PBX.channel_tech}/{ext}"


def test_manager_conf_matches_contactds_ami_defaults() -> None:
    general = _section(ASTERISK_DIR / "manager.conf", "general")
    assert general["bindaddr"] == ["127.0.0.1"]
    assert general["port"] == [str(AMIConfig().port)]
    user = _section(ASTERISK_DIR / "manager.conf", AMIConfig().username)
    assert user["read"] == ["all"] and user["write"] == ["all"]
    assert user["secret"] == ["CHANGE-ME"]  # a placeholder, never a real secret in the repo


def test_features_conf_enables_both_transfer_codes() -> None:
    featuremap = _section(ASTERISK_DIR / "features.conf", "featuremap")
    assert featuremap["blindxfer"] == ["#1"]
    assert featuremap["atxfer"] == ["*2"]  # without it Asterisk refuses contactd's AMI Atxfer


def test_pjsip_phones_and_trunk_use_the_shipped_contexts(full_plan: Dialplan) -> None:
    sections = _conf_sections(ASTERISK_DIR / "pjsip.conf")
    endpoints = {name: dict(items) for name, items in sections if dict(items).get("type") == "endpoint"}
    assert endpoints["trunk"]["context"] == "from-trunk"
    templates = {name: dict(items) for name, items in sections}
    assert templates["desk-phone"]["context"] == "from-phones"
    for ext in ("1001", "1002", "1003"):
        assert any(name == ext and dict(items).get("aors") == ext for name, items in sections)
    assert full_plan.has_extension("from-trunk", "0212345678", 1)
    assert full_plan.has_extension("from-phones", "1002", 1)


def test_sample_extensions_conf_routes_trunk_and_phones(full_plan: Dialplan) -> None:
    assert not full_plan.missing_includes()
    ran = _walk(full_plan, "from-trunk", "0212345678",
                {**INBOUND_DECISIONS, "DB_EXISTS": False, IVR_NOT_DONE: True})
    assert "AGI(agi://${CONTACTD_AGI}/inbound)" in ran and f"Queue({PBX.queue},t)" in ran
    assert _walk(full_plan, "from-trunk", "s", {**INBOUND_DECISIONS, "DB_EXISTS": True})[-2] == \
        "Playback(contactd/blocked)"
    # Desk phones: colleagues, pickup, outside numbers with the shop's caller ID, and emergency numbers.
    assert _walk(full_plan, "from-phones", "1002", {})[0].startswith("Dial(PJSIP/${EXTEN},")
    assert _walk(full_plan, "from-phones", "*81002", {})[0] == f"Pickup(${{EXTEN:2}}@{PBX.agent_context})"
    outside = _walk(full_plan, "from-phones", "01012345678", {"CONTACTD_SHOP_CID": True})
    assert outside[0] == f"Goto({PBX.click_to_call_context},${{EXTEN}},1)"
    assert "Dial(PJSIP/${EXTEN}@trunk,60,tT)" in outside
    assert "@trunk" in _walk(full_plan, "from-phones", "119", {})[0]


# ------------------------------------------------------------------------------- the extensions.conf reader


@pytest.mark.parametrize(
    ("pattern", "exten", "expected"),
    [
        ("_X.", "12", True), ("_X.", "1", False), ("_X.", "", False), ("_X.", "a1", False),
        ("_XXXX", "1234", True), ("_XXXX", "12345", False), ("_XXXX", "123", False),
        ("_NXX", "212", True), ("_NXX", "112", False), ("_NXX", "012", False),
        ("_ZX", "10", True), ("_ZX", "01", False),
        ("_[1-5]X", "59", True), ("_[1-5]X", "69", False), ("_[13-5]", "2", False), ("_[13-5]", "4", True),
        ("_X!", "1", True), ("_X!", "123", True), ("_X!", "", False),
        ("_NXX-XXXX", "2345678", True),  # dashes in patterns are decoration
        ("_nxx", "212", True),  # pattern letters are case-insensitive
        ("_+X.", "+8210", True), ("_*8X.", "*81001", True),
        ("s", "s", True), ("s", "S", False), ("abuse", "abuse", True), ("1001", "1001", True), ("1001", "1002", False),
    ],
)
def test_pattern_matching(pattern: str, exten: str, expected: bool) -> None:
    assert extension_matches(pattern, exten) is expected


def test_exact_name_beats_pattern_and_specific_beats_loose() -> None:
    plan = parse_dialplan(
        "[c]\n"
        "exten => _X.,1,NoOp(loose)\n"
        "exten => _XXXX,1,NoOp(four)\n"
        "exten => 1234,1,NoOp(exact)\n"
        "exten => _1XXX,1,NoOp(one-prefix)\n"
    )
    assert plan.find("c", "1234").step(1).args == "exact"
    assert plan.find("c", "1235").step(1).args == "one-prefix"
    assert plan.find("c", "2235").step(1).args == "four"
    assert plan.find("c", "22351").step(1).args == "loose"


def test_own_extensions_before_includes_in_order_and_include_loops_terminate() -> None:
    plan = parse_dialplan(
        "[a]\ninclude => b\ninclude => c\nexten => 1,1,NoOp(a)\n"
        "[b]\nexten => _X,1,NoOp(b)\ninclude => a\n"
        "[c]\nexten => _X,1,NoOp(c)\nexten => 9,1,NoOp(c9)\n"
    )
    assert plan.find("a", "1").step(1).args == "a"
    assert plan.find("a", "2").step(1).args == "b"
    # Includes are searched in order and the first one with any match wins, even over c's exact "9".
    assert plan.find("a", "9").step(1).args == "b"
    assert plan.find("b", "55") is None  # b -> a -> b ... stops
    assert plan.missing_includes() == []
    assert parse_dialplan("[a]\ninclude => nowhere\n").missing_includes() == [("a", "nowhere")]


def test_priorities_labels_same_hint_and_comments() -> None:
    plan = parse_dialplan(
        ";-- a block comment\n[not] a context --;\n"
        "[general]\nstatic = yes\n"
        "[globals]\nFOO=bar ; trailing comment\n"
        "[c] ; comment after header\n"
        "exten => 100,hint,PJSIP/100\n"
        "exten => 100,1,Answer\n"
        " same => n(loop),Playback(hello\\;world)\n"
        "\tsame =>   n,  GotoIf($[${X} = 1]?loop:done)\n"
        "exten => 100,10(done),Hangup()\n"
        "exten => 100/0212345678,1,NoOp(vip)\n"
    )
    assert "not" not in plan.contexts
    assert plan.globals == {"FOO": "bar"}
    ext = plan.find("c", "100")
    assert [(s.priority, s.label, s.app) for s in ext.ordered_steps()] == [
        (1, None, "Answer"), (2, "loop", "Playback"), (3, None, "GotoIf"), (10, "done", "Hangup"),
    ]
    assert ext.step("loop").args == "hello;world"
    assert ext.step(3).arg_list() == ["$[${X} = 1]?loop:done"]
    assert plan.has_extension("c", "100", "done") and not plan.has_extension("c", "100", 4)
    assert plan.find("c", "100", callerid="0212345678").step(1).args == "vip"
    assert plan.find("c", "100", callerid="0299999999").step(1).app == "Answer"


def test_templates_and_append() -> None:
    plan = parse_dialplan(
        "[base](!)\nexten => _X,1,NoOp(base)\n"
        "[c](base)\nexten => 9,1,NoOp(own)\n"
        "[c](+)\nexten => 8,1,NoOp(appended)\n"
        "#include \"more.conf\"\n"
    )
    assert plan.find("base", "1") is None  # a template is not a context a channel can enter
    assert plan.find("c", "1").step(1).args == "base"
    assert plan.find("c", "8").step(1).args == "appended"
    assert plan.file_includes == ["more.conf"]


def test_step_argument_splitting_keeps_nested_commas() -> None:
    step = Step(1, None, "Dial", "PJSIP/${CUT(x,@,1)},30,tT", 1)
    assert step.arg_list() == ["PJSIP/${CUT(x,@,1)}", "30", "tT"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("exten => 1,1,NoOp\n", "before the first"),
        ("[c]\nsame => n,NoOp\n", "without a preceding"),
        ("[c]\nexten => 1,1,NoOp\nexten => 1,1,Hangup\n", "defined twice"),
        ("[c]\nexten => 1,n,NoOp\n", "priority 'n' before"),
        ("[c]\nexten => 1,x,NoOp\n", "bad priority"),
        ("[c]\nexten => _[1-,1,NoOp\n", "unclosed"),
        ("[c]\nexten => 1,1\n", "expected 'exten"),
        ("[c]\nbogus => 1\n", "unknown key"),
        ("[c](nosuchtemplate)\n", "unknown template"),
        ("[c]\nthis is not config\n", "expected 'key => value'"),
    ],
)
def test_syntax_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DialplanError, match=message):
        parse_dialplan(text)


def test_load_dialplan_follows_includes_and_reports_missing_files(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text('[a]\nexten => 1,1,NoOp\n#include "sub/extra.conf"\n', encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "extra.conf").write_text("[b]\nexten => 2,1,NoOp\n", encoding="utf-8")
    plan = load_dialplan(tmp_path / "main.conf")
    assert plan.has_extension("b", "2", 1)
    (tmp_path / "broken.conf").write_text("#include missing.conf\n", encoding="utf-8")
    with pytest.raises(DialplanError, match="missing.conf"):
        load_dialplan(tmp_path / "broken.conf")
    (tmp_path / "loop.conf").write_text("#include loop.conf\n", encoding="utf-8")
    with pytest.raises(DialplanError, match="too deeply"):
        load_dialplan(tmp_path / "loop.conf")
