"""`python -m scripts.conformance.extra_cases OUT [--legacy-dir DIR] [--seed N]`: conformance
cases generated from the legacy export, beyond the public file, for `make conformance
CASES=OUT`: a send of every template sample, a spread of the historical messages' parameters
(every seventh to a recipient the providers fail), status, detail and another app's detail of
sixty historical messages, every template fetched by its app and by another, and the edges of
every parameter the SPEC names (list items and their whitespace, lengths in code points, JSON
oddities, methods, paths, signing mutations). Deterministic for a seed; the apps' rate limits are
respected (the app with a 5/s limit is paced)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

DEFAULT_LEGACY_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "legacy"


def generate(legacy_dir: Path, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    data = legacy_dir / "data"
    apps = [json.loads(line) for line in (data / "apps.jsonl").open(encoding="utf-8")]
    tpls = {
        t["tpl_id"]: t
        for t in (json.loads(line) for line in (data / "templates.jsonl").open(encoding="utf-8"))
    }
    samples = [json.loads(line) for line in (data / "samples.jsonl").open(encoding="utf-8")]
    msgs = [json.loads(line) for line in (data / "messages.jsonl").open(encoding="utf-8")]
    SEND = {
        "sms": "/gateway/sms/send.do",
        "mail": "/gateway/mail/send.do",
        "push": "/gateway/push/send.do",
    }
    cases: list[dict] = []

    def recip(ch, i, fail=False):
        if ch == "sms":
            # (a mobile ending 4444 is one the carrier fails: UNDELIV)
            return f"139{i % 10000:04d}4444" if fail else f"139{i:08d}"
        if ch == "mail":
            return f"bounce{i}@example.com" if fail else f"user{i}@example.com"
        return f"offline{i}" if fail else f"u{i}"

    def add(name, path, app, params, **kw):
        c = {
            "name": name,
            "method": kw.pop("method", "POST" if "send" in path else "GET"),
            "path": path,
            "app": app,
            "params": params,
        }
        if app.startswith("ak_hrsaas"):
            c["sleep_ms"] = 260
        c.update(kw)
        cases.append(c)

    def variants(prefix: str, path: str, values: dict[str, Any], params: Any) -> None:
        """One case of the app `shop` per named value: `params(name, value)`."""
        for k, v in values.items():
            add(f"{prefix}{k}", path, "shop", params(k, v))

    def send_params(ch, tpl_id, params, i, fail=False):
        key = {"sms": "mobiles", "mail": "to", "push": "user_ids"}[ch]
        return {key: recip(ch, i, fail), "tpl_id": tpl_id, "tpl_params": params}

    for i, s in enumerate(samples):
        t = tpls[s["tpl_id"]]
        add(
            f"gen_sample_{i}_{s['tpl_id']}",
            SEND[t["channel"]],
            t["app_key"],
            send_params(t["channel"], s["tpl_id"], s["params"], i),
        )
    seen = set()
    for m in rnd.sample(msgs, len(msgs)):
        if not m["tpl_id"]:
            continue
        key = (m["tpl_id"], json.dumps(m["tpl_params"], sort_keys=True))
        if key in seen or sum(1 for k in seen if k[0] == m["tpl_id"]) >= 4:
            continue
        seen.add(key)
        t = tpls.get(m["tpl_id"])
        if not t:
            continue
        add(
            f"gen_hist_{len(seen)}_{m['tpl_id']}",
            SEND[t["channel"]],
            m["app_key"],
            send_params(
                t["channel"], m["tpl_id"], m["tpl_params"], len(seen), fail=len(seen) % 7 == 0
            ),
        )
    for m in rnd.sample(msgs, 60):
        add(
            f"gen_status_{m['msg_id']}",
            "/gateway/message/status.do",
            m["app_key"],
            {"msg_id": m["msg_id"]},
        )
        add(
            f"gen_detail_{m['msg_id']}",
            "/gateway/message/detail.do",
            m["app_key"],
            {"msg_id": m["msg_id"]},
        )
        other = rnd.choice([a for a in apps if a["app_key"] != m["app_key"]])["app_key"]
        add(
            f"gen_detail_other_{m['msg_id']}",
            "/gateway/message/detail.do",
            other,
            {"msg_id": m["msg_id"]},
        )
    for tid, t in tpls.items():
        add(f"gen_tplget_{tid}", "/gateway/template/get.do", t["app_key"], {"tpl_id": tid})
        add(f"gen_tplget_shop_{tid}", "/gateway/template/get.do", "shop", {"tpl_id": tid})
    # parameter edges
    SMS = {"tpl_id": "SMS_100001", "tpl_params": {"code": "1", "minutes": 1}}
    edges = {
        "mob_u3000": " 13800138000\u3000",
        "mob_nbsp": "\u00a013800138000",
        "mob_1c": "\x1c13800138000\x1f",
        "mob_nul": "\x0013800138000",
        "mob_tab_nl": "\t13800138000\n",
        "mob_plus86_space": "+86 13800138000",
        "mob_fullwidth": "１３８００１３８０００",
        "mob_arabic_digits": "١٣٨٠٠١٣٨٠٠٠",
        "mob_12": "138001380001",
        "mob_10": "1380013800",
        "mob_120": "12000000000",
        "mob_00": "0013800138000",
        "mob_8686": "868613800138000",
        "mob_plus_only": "+",
        "mob_comma_only": ",",
        "mob_trailing": "13800138000,",
        "mob_leading": ",13800138000",
        "mob_space_item": "13800138000, ,13900139000",
        "mob_19": "19912345678",
        "mob_ws_only": "   ",
        "mob_dup_prefix": "+8613800138000,13800138000",
        "mob_semicolon": "13800138000;13900139000",
        "mob_emoji": "1380013800😀",
    }
    variants("gen_", "/gateway/sms/send.do", edges, lambda _, v: {"mobiles": v, **SMS})
    variants(
        "gen_",
        "/gateway/sms/send.do",
        {
            "sn_2": "AB",
            "sn_12": "一二三四五六七八九十一二",
            "sn_13": "一二三四五六七八九十一二三",
            "sn_emoji2": "😀😀",
            "sn_emoji13": "😀" * 13,
            "sn_space": "  ",
            "sn_html": "<b>",
            "sn_1": "A",
            "sn_newline": "A\nB",
        },
        lambda _, v: {"mobiles": "13800138000", **SMS, "sign_name": v},
    )
    variants(
        "gen_",
        "/gateway/sms/send.do",
        {
            "oid_64": "x" * 64,
            "oid_65": "x" * 65,
            "oid_emoji64": "😀" * 64,
            "oid_emoji65": "😀" * 65,
            "oid_space": " ",
            "oid_cjk": "订单号",
        },
        lambda k, v: {
            "mobiles": "13800138000",
            **SMS,
            "out_id": v + str(rnd.randrange(10**9))
            if "65" not in k and "64" not in k
            else v[:-1] + "z",
        },
    )
    variants(
        "gen_",
        "/gateway/sms/send.do",
        {
            "tp_nan": '{"code": NaN, "minutes": 1}',
            "tp_inf": '{"code": Infinity, "minutes": -Infinity}',
            "tp_surrogate": '{"code": "\\ud800", "minutes": 1}',
            "tp_pair": '{"code": "\\ud83d\\ude00", "minutes": 1}',
            "tp_dupkey": '{"code": "1", "code": "2", "minutes": 1}',
            "tp_null": "null",
            "tp_num": "5",
            "tp_str": '"x"',
            "tp_ws": '  {"code":"1","minutes":1}  ',
            "tp_trailing": '{"code":"1","minutes":1} x',
            "tp_bigint": '{"code": 123456789012345678901234567890, "minutes": 1}',
            "tp_float": '{"code": 1.0, "minutes": 1e3}',
            "tp_deep": '{"code":' + "[" * 50 + "]" * 50 + ',"minutes":1}',
            "tp_veryDeep": '{"code":' + "[" * 3000 + "]" * 3000 + "}",
            "tp_bool": '{"code": true, "minutes": false}',
            "tp_empty_obj": "{}",
            "tp_bom": '\ufeff{"code":"1","minutes":1}',
            "tp_single_quote": "{'code':'1'}",
            "tp_nested_null": '{"code": null, "minutes": null}',
            "tp_unicode_key": '{"code":"1","minutes":1,"中":"文"}',
        },
        lambda _, v: {"mobiles": "13800138000", "tpl_id": "SMS_100001", "tpl_params": v},
    )
    variants(
        "gen_mail_",
        "/gateway/mail/send.do",
        {
            "to_case": "Alice@Example.com,alice@example.com",
            "to_plus": "a+b@example.com",
            "to_pct": "a%b@example.com",
            "to_dots": "a..b@example..com",
            "to_tld1": "a@example.c",
            "to_ip": "a@127.0.0.1",
            "to_unicode": "用户@例子.公司",
            "to_space": " alice@example.com ",
            "to_quote": '"a"@example.com',
            "to_dash_domain": "a@-example.com",
            "to_underscore_dom": "a@ex_ample.com",
            "to_trailing_nl": "alice@example.com\n",
            "to_50": ",".join(f"u{i}@example.com" for i in range(50)),
            "to_51_dup": ",".join(f"u{i % 50}@example.com" for i in range(51)),
            "to_uppercase_tld": "a@example.COM",
            "to_num_tld": "a@example.c0m",
        },
        lambda _, v: {"to": v, "subject": "S", "content": "<p>x</p>"},
    )
    MAIL_T = {
        "tpl_id": "MAIL_200005",
        "tpl_params": {"name": "A", "link": "x", "expire_minutes": 1},
    }
    for k, v in {
        "cc_dup": {"cc": "a@example.com,a@example.com"},
        "cc_empty_item": {"cc": "a@example.com,"},
        "cc_same_as_to": {"cc": "alice@example.com"},
        "alias_64": {"from_alias": "😀" * 64},
        "alias_65": {"from_alias": "😀" * 65},
        "subject_empty_with_tpl": {"subject": ""},
        "content_and_tpl": {"content": "<p>ignored</p>"},
        "content_tpl_params_bad": {
            "tpl_id": "",
            "content": "c",
            "subject": "s",
            "tpl_params": "[1]",
        },
        "raw_content_velocity": {
            "tpl_id": "",
            "subject": "$x #set($a=1)",
            "content": "#foreach($i in [1..3])$i#end",
        },
        "subject_velocity_override": {"subject": "#if(true)Y#end ${name}"},
        "missing_subject_raw": {"tpl_id": "", "content": "c"},
        "tpl_missing_param": {"tpl_params": {"name": "A"}},
    }.items():
        p = {"to": "alice@example.com", **MAIL_T, **v}
        add(f"gen_mail_{k}", "/gateway/mail/send.do", "shop", p)
    variants(
        "gen_push_",
        "/gateway/push/send.do",
        {
            "uid_64": "u" * 64,
            "uid_65": "u" * 65,
            "uid_dash": "-_-",
            "uid_dot": "u.1",
            "uid_case": "U1,u1",
            "uid_unicode": "用户",
            "uid_space_in": "u 1",
            "uid_1000": ",".join(f"u{i}" for i in range(1000)),
            "uid_1001": ",".join(f"u{i}" for i in range(1001)),
        },
        lambda _, v: {
            "user_ids": v,
            "tpl_id": "PUSH_300001",
            "tpl_params": {"order_no": "1", "status_text": "x"},
        },
    )
    variants(
        "gen_push_",
        "/gateway/push/send.do",
        {
            "ex_arr": "[1]",
            "ex_null": "null",
            "ex_nested": '{"a": {"b": [1, 2, {"c": null}]}}',
            "ex_nan": '{"a": NaN}',
            "ex_surrogate": '{"a": "\\udc00"}',
            "ex_empty": "{}",
        },
        lambda _, v: {
            "user_ids": "u1",
            "tpl_id": "PUSH_300001",
            "tpl_params": {"order_no": "1", "status_text": "x"},
            "extras": v,
        },
    )
    B = "/gateway/sms/batch_send.do"
    variants(
        "gen_batch_",
        B,
        {
            "item_not_obj": [1],
            "item_mobile_num": [{"mobile": 13800138000}],
            "item_no_mobile": [{"tpl_params": {}}],
            "item_tp_null": [{"mobile": "13800138000", "tpl_params": None}],
            "item_tp_list": [{"mobile": "13800138000", "tpl_params": [1]}],
            "item_mobile_ws": [
                {"mobile": " 13800138000\u3000", "tpl_params": {"code": "1", "minutes": 1}}
            ],
            "item_missing_param_second": [
                {"mobile": "13800138000", "tpl_params": {"code": "1", "minutes": 1}},
                {"mobile": "13800138001", "tpl_params": {"code": "1"}},
            ],
            "item_dup_missing_param": [
                {"mobile": "13800138000", "tpl_params": {"code": "1", "minutes": 1}},
                {"mobile": "+8613800138000", "tpl_params": {}},
            ],
            "item_1000": [
                {"mobile": f"139{i:08d}", "tpl_params": {"code": str(i), "minutes": 1}}
                for i in range(1000)
            ],
            "item_1001": [
                {"mobile": f"139{i:08d}", "tpl_params": {"code": str(i), "minutes": 1}}
                for i in range(1001)
            ],
            "item_extra_keys": [
                {"mobile": "13800138000", "tpl_params": {"code": "1", "minutes": 1}, "x": 1}
            ],
            "item_bad_then_invalid": [{"mobile": "1"}, 5],
        },
        lambda _, v: {"tpl_id": "SMS_100001", "items": v},
    )
    add(
        "gen_batch_sign_name_bad",
        B,
        "shop",
        {
            "tpl_id": "SMS_100001",
            "sign_name": "x",
            "items": [{"mobile": "13800138000", "tpl_params": {"code": "1", "minutes": 1}}],
        },
    )
    add(
        "gen_batch_tpl_missing",
        B,
        "shop",
        {"tpl_id": "SMS_999", "items": [{"mobile": "13800138000"}]},
    )
    add(
        "gen_batch_draft", B, "shop", {"tpl_id": "SMS_100007", "items": [{"mobile": "13800138000"}]}
    )
    add(
        "gen_batch_mail_tpl",
        B,
        "shop",
        {"tpl_id": "MAIL_200005", "items": [{"mobile": "13800138000"}]},
    )
    for k, v in {"nonce_max": "max", "nonce_min": "min", "nonce_long": "long"}.items():
        add(
            f"gen_{k}",
            "/gateway/sms/send.do",
            "shop",
            {"mobiles": "13800138000", **SMS},
            mutate={"nonce": v},
        )
    for k, v in {"ts_offset_299": -299, "ts_offset_301": 301, "ts_future_299": 299}.items():
        add(
            f"gen_{k}",
            "/gateway/sms/send.do",
            "shop",
            {"mobiles": "13800138000", **SMS},
            mutate={"timestamp": v},
        )
    for path in [
        "/gateway/mail/send.do",
        "/gateway/push/send.do",
        B,
        "/gateway/message/detail.do",
        "/gateway/template/get.do",
    ]:
        for mut in (
            {"sign": "bad"},
            {"drop": ["sign"]},
            {"timestamp": "old"},
            {"nonce": "symbols"},
        ):
            add(
                f"gen_mut_{path.split('/')[-1]}_{list(mut.items())[0][0]}_{list(mut.items())[0][1]}",
                path,
                "shop",
                {},
                mutate=mut,
            )
        add(f"gen_disabled_{path.split('/')[-1]}", path, "club", {})
        for meth in ("HEAD", "PUT", "OPTIONS", "PATCH"):
            add(f"gen_method_{meth}_{path.split('/')[-1]}", path, "shop", {}, method=meth)
        add(
            f"gen_get_{path.split('/')[-1]}",
            path,
            "shop",
            {},
            method="GET" if "send" in path else "POST",
        )
    for p in [
        "/gateway/",
        "/gateway",
        "/gateway/sms/send.DO",
        "/GATEWAY/sms/send.do",
        "/gateway//sms/send.do",
        "/gateway/sms/../sms/send.do",
        "/gateway/sms/send.do;x",
        "/gateway/sms/send.do%20",
    ]:
        add(f"gen_path_{p}", p, "shop", {}, method="POST")
    # empty-value params (missing semantics)
    for path, key in [
        ("/gateway/sms/send.do", "mobiles"),
        ("/gateway/sms/send.do", "tpl_id"),
        ("/gateway/mail/send.do", "to"),
        ("/gateway/push/send.do", "user_ids"),
        (B, "items"),
        ("/gateway/message/status.do", "msg_id"),
        ("/gateway/template/get.do", "tpl_id"),
    ]:
        base = {
            "/gateway/sms/send.do": {"mobiles": "13800138000", **SMS},
            "/gateway/mail/send.do": {"to": "a@example.com", **MAIL_T},
            "/gateway/push/send.do": {"user_ids": "u1", "tpl_id": "PUSH_300001"},
            B: {"tpl_id": "SMS_100001", "items": "[]"},
            "/gateway/message/status.do": {},
            "/gateway/template/get.do": {},
        }[path]
        add(f"gen_empty_{path.split('/')[-1]}_{key}", path, "shop", {**base, key: ""})
    # msg ids
    for v in [
        "260803073235000002 ",
        "0260803073235000002",
        "26080307323500000",
        "２６0803073235000002",
        "-1",
        "1e18",
        "260803073235000002,260803073235000002",
    ]:
        add(f"gen_msgid_{v}", "/gateway/message/status.do", "shop", {"msg_id": v})

    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--legacy-dir", type=Path, default=DEFAULT_LEGACY_DIR)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cases = generate(args.legacy_dir, args.seed)
    args.out.write_text(json.dumps(cases, ensure_ascii=False, indent=0), encoding="utf-8")
    print(f"{len(cases)} cases written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
