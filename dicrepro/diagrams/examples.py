"""One small, hand-written diagram per supported type, in English or Chinese.

They follow the conventions of :mod:`dicrepro.diagrams.graph` (plus the additions listed at the top of
:mod:`dicrepro.diagrams.sample`) and are the reference inputs that the verbalizer, the VQA generator and the
renderer are tested against. They are not sampled, so they never change with the knowledge base.
"""

from __future__ import annotations

from dicrepro.diagrams.graph import Diagram, Edge, Group, Node

EXAMPLE_TYPES = ("flowchart", "sequence", "state", "class", "er", "gantt", "pie", "mindmap", "timeline",
                 "block", "architecture", "xychart", "quadrant", "requirement", "packet")


def example_diagrams(language: str = "en") -> list[Diagram]:
    """One small diagram per type in :data:`EXAMPLE_TYPES` order, labels in ``language`` ("en"/"zh")."""
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")

    def L(en: str, zh: str) -> str:  # noqa: N802 - reads like a label literal
        return zh if language == "zh" else en

    def D(t: str, title: str, topic: str, area: str, **kw) -> Diagram:  # noqa: N802
        meta = {"theme": "default", "themeVariables": {}, "show_title": True, **kw.pop("meta", {})}
        return Diagram(t, title, topic, area, language=language, meta=meta, **kw)

    N, E, G = Node, Edge, Group
    return [
        D("flowchart", L("Registration check", "注册检查"), "5g_registration", "5g_core", nodes=[
            N("s", L("Start", "开始"), "start"), N("a", L("Receive RegistrationRequest", "接收RegistrationRequest")),
            N("d", L("UE authenticated?", "UE已鉴权？"), "decision"), N("r", L("Reject UE", "拒绝UE")),
            N("ok", L("Send RegistrationAccept", "发送RegistrationAccept")), N("e", L("End", "结束"), "end")],
          edges=[E("s", "a"), E("a", "d"), E("d", "ok", L("yes", "是")), E("d", "r", L("no", "否")),
                 E("ok", "e"), E("r", "e")],
          groups=[G("g1", L("AMF side", "AMF侧"), ["a", "d"])], meta={"direction": "TD"}),
        D("sequence", L("Initial registration", "初始注册"), "5g_registration", "5g_core", nodes=[
            N("ue", "UE", "actor"), N("gnb", "gNB", "participant"), N("amf", "AMF", "participant"),
            N("ausf", "AUSF", "participant")],
          edges=[E("ue", "gnb", "RRCSetupRequest", "sync", 0), E("gnb", "ue", "RRCSetup", "reply", 1),
                 E("ue", "amf", "RegistrationRequest", "sync", 2),
                 E("amf", "ausf", "Nausf_UEAuthentication_Authenticate", "async", 3),
                 E("amf", "ue", "RegistrationAccept", "reply", 4)],
          groups=[G("p1", L("RRC connection", "RRC连接"), ["0", "1"]),
                  G("p2", L("NAS registration", "NAS注册"), ["2", "3", "4"])], meta={"autonumber": False}),
        D("state", L("RRC states", "RRC状态"), "nr_rrc_states", "5g_ran", nodes=[
            N("s0", "", "start"), N("idle", "RRC_IDLE", "state"), N("conn", "RRC_CONNECTED", "state"),
            N("inact", "RRC_INACTIVE", "state"), N("x", "", "end")],
          edges=[E("s0", "idle"), E("idle", "conn", L("connection setup", "连接建立")),
                 E("conn", "inact", L("suspend", "挂起")), E("inact", "conn", L("resume", "恢复")),
                 E("conn", "idle", L("release", "释放")), E("idle", "x")], meta={"direction": "LR"}),
        D("class", L("Network functions", "网络功能"), "nf_model", "5g_core", nodes=[
            N("nf", "NetworkFunction", attrs={"fields": ["+nfId: string"], "methods": ["+register()"]}),
            N("amf", "AMF", attrs={"fields": ["+guami: string"], "methods": []}),
            N("smf", "SMF", attrs={"fields": [], "methods": ["+createSession()"]}),
            N("ctx", "UEContext", attrs={"fields": [], "methods": []})],
          edges=[E("amf", "nf", kind="inheritance"), E("smf", "nf", kind="inheritance"),
                 E("amf", "ctx", L("manages", "管理"), "composition")]),
        D("er", L("Subscriber data", "用户数据"), "udr_subscriber_data", "5g_core", nodes=[
            N("sub", "SUBSCRIBER", attrs={"fields": [["string", "supi", "PK"], ["string", "msisdn", ""]]}),
            N("ses", "PDU_SESSION", attrs={"fields": [["int", "session_id", "PK"], ["string", "supi", "FK"]]}),
            N("slc", "SLICE", attrs={"fields": [["string", "snssai", "PK"]]})],
          edges=[E("sub", "ses", L("opens", "建立"), attrs={"cardinality": "||--o{"}),
                 E("ses", "slc", L("uses", "使用"), attrs={"cardinality": "}o--||"})]),
        D("gantt", L("Core upgrade", "核心网升级"), "core_upgrade_change", "operations", nodes=[
            N("t1", L("Backup config", "备份配置"), attrs={"start": "2024-03-01", "days": 2}),
            N("t2", L("Upgrade AMF", "升级AMF"), attrs={"start": "2024-03-03", "days": 3}),
            N("t3", L("Verify KPIs", "验证KPI"), attrs={"start": "2024-03-06", "days": 1}),
            N("t4", L("Close change", "关闭变更"), attrs={"start": "2024-03-07", "days": 1})],
          edges=[E("t1", "t2"), E("t2", "t3"), E("t3", "t4")],
          groups=[G("s1", L("Preparation", "准备"), ["t1"]), G("s2", L("Execution", "执行"), ["t2", "t3", "t4"])]),
        D("pie", L("Alarm causes", "告警原因"), "alarm_statistics", "operations", nodes=[
            N("a", L("Link down", "链路中断"), attrs={"value": 45}), N("b", L("Power", "电源"), attrs={"value": 30}),
            N("c", L("Fan failure", "风扇故障"), attrs={"value": 15}),
            N("d", L("Other", "其他"), attrs={"value": 10})]),
        D("mindmap", L("5G core", "5G核心网"), "5gc_overview", "5g_core", nodes=[
            N("r", "5GC"), N("c", L("Control plane", "控制面")), N("u", L("User plane", "用户面")),
            N("amf", "AMF"), N("smf", "SMF"), N("upf", "UPF")],
          edges=[E("r", "c"), E("r", "u"), E("c", "amf"), E("c", "smf"), E("u", "upf")]),
        D("timeline", L("3GPP releases", "3GPP版本"), "3gpp_releases", "5g_core", nodes=[
            N("e1", L("LTE introduced", "引入LTE")), N("e2", L("5G NR phase 1", "5G NR第一阶段")),
            N("e3", L("URLLC enhancements", "URLLC增强")), N("e4", "RedCap")],
          groups=[G("p1", "2008", ["e1"]), G("p2", "2018", ["e2"]), G("p3", "2020", ["e3", "e4"])]),
        D("block", L("Transport path", "传输路径"), "mobile_backhaul", "optical", nodes=[
            N("ran", "gNB", "server"), N("agg", L("Aggregation router", "汇聚路由器"), "server"),
            N("core", "UPF", "server")],
          edges=[E("ran", "agg", "N3"), E("agg", "core")], meta={"columns": 3}),
        D("architecture", L("Cloud core", "云化核心网"), "cloud_native_core", "cloud", nodes=[
            N("lb", L("Load balancer", "负载均衡"), "internet"), N("amf", "AMF", "server"),
            N("db", "UDR", "database"), N("k8s", "Kubernetes", "cloud")],
          edges=[E("lb", "amf", attrs={"sides": ["R", "L"]}), E("amf", "db", attrs={"sides": ["R", "L"]}),
                 E("k8s", "amf", attrs={"sides": ["B", "T"]})],
          groups=[G("z1", L("Control zone", "控制区"), ["amf", "db"])]),
        D("xychart", L("Cell throughput", "小区吞吐量"), "cell_throughput_kpi", "5g_ran", nodes=[
            N("m", L("Mon", "周一"), attrs={"value": 320}), N("t", L("Tue", "周二"), attrs={"value": 410}),
            N("w", L("Wed", "周三"), attrs={"value": 380})],
          meta={"y_label": L("Throughput (Mbps)", "吞吐量 (Mbps)"), "kind": "bar"}),
        D("quadrant", L("Vendor assessment", "厂商评估"), "vendor_assessment", "operations", nodes=[
            N("p", "VendorA", attrs={"x": 0.8, "y": 0.7}), N("q", "VendorB", attrs={"x": 0.2, "y": 0.9}),
            N("r", "VendorC", attrs={"x": 0.3, "y": 0.2}), N("s", "VendorD", attrs={"x": 0.7, "y": 0.1})],
          meta={"x_axis": [L("Low cost", "低成本"), L("High cost", "高成本")],
                "y_axis": [L("Low maturity", "低成熟度"), L("High maturity", "高成熟度")],
                "quadrants": [L("Leaders", "领先者"), L("Challengers", "挑战者"), L("Niche", "小众"),
                              L("Visionaries", "远见者")]}),
        D("requirement", L("Session requirements", "会话需求"), "pdu_session_establishment", "5g_core", nodes=[
            N("r1", "session_setup_time", "requirement",
              {"risk": "High", "verify_method": "Test", "text": L("setup within 100 ms", "100毫秒内建立"),
               "req_type": "performanceRequirement", "req_id": "REQ-1"}),
            N("r2", "session_continuity", "requirement",
              {"risk": "Medium", "verify_method": "Analysis", "text": L("keep IP on handover", "切换时保持IP"),
               "req_type": "functionalRequirement", "req_id": "REQ-2"}),
            N("smf", "SMF", "element", {"type": L("network function", "网络功能")})],
          edges=[E("smf", "r1", kind="satisfies"), E("smf", "r2", kind="satisfies"),
                 E("r2", "r1", kind="derives")]),
        D("packet", L("UDP header", "UDP报文头"), "udp_header", "transport", nodes=[
            N("sp", "Source Port", attrs={"start": 0, "end": 15}),
            N("dp", "Destination Port", attrs={"start": 16, "end": 31}),
            N("ln", "Length", attrs={"start": 32, "end": 47}),
            N("ck", "Checksum", attrs={"start": 48, "end": 63})]),
    ]
