#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets to fuzz/corpus/<target>/.

Generated, not committed: real labels come from the committed test vectors
(tests/vectors/*.json, made by `qr-packer/examples/make-vectors.rs`), so the
label targets start past base45, COSE and zstd; the rest are small
hand-made inputs in each format. Existing corpus files are kept (a campaign
adds to them); seeds are written under fixed names, so running this twice
changes nothing.
"""
import json
import pathlib
import struct
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else FUZZ / "corpus"


# --- a minimal CBOR encoder/decoder (enough for the seeds) ---
def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, bytes):
        return _head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def _read_head(b, i):
    major, ai = b[i] >> 5, b[i] & 31
    i += 1
    if ai < 24:
        return major, ai, i
    size = {24: 1, 25: 2, 26: 4, 27: 8}[ai]
    return major, int.from_bytes(b[i:i + size], "big"), i + size


def _skip(b, i):
    major, n, i = _read_head(b, i)
    if major == 6:
        return _skip(b, i)
    if major in (2, 3):
        return i + n
    if major == 4:
        for _ in range(n):
            i = _skip(b, i)
        return i
    if major == 5:
        for _ in range(2 * n):
            i = _skip(b, i)
        return i
    return i


def cose_payload(signed):
    """The payload (bundle) of a COSE_Sign1, tagged or not."""
    i = 0
    major, n, j = _read_head(signed, 0)
    if major == 6:
        i = j
    major, n, i = _read_head(signed, i)
    assert major == 4 and n == 4, "COSE_Sign1 is an array of 4"
    i = _skip(signed, i)  # protected
    i = _skip(signed, i)  # unprotected
    major, n, i = _read_head(signed, i)
    assert major == 2
    return signed[i:i + n]


B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45_decode(text):
    out = bytearray()
    vals = [B45.index(c) for c in text]
    for k in range(0, len(vals), 3):
        chunk = vals[k:k + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 2025
            out += n.to_bytes(2, "big")
        else:
            out.append(chunk[0] + chunk[1] * 45)
    return bytes(out)


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def label_seeds():
    for path in sorted((ROOT / "tests" / "vectors").glob("*.json")):
        doc = json.loads(path.read_text())
        text = doc.get("text")
        if not text:
            continue
        write("label_text", path.stem, text)
        body = text.split(":", 1)[1] if ":" in text else text
        try:
            signed = base45_decode(body)
            write("label_bundle", path.stem, cose_payload(signed))
        except (ValueError, AssertionError, IndexError, KeyError):
            pass  # a vector that is broken before the bundle


def identifier_seeds():
    for i, s in enumerate([
        "meter-sp.example/wifi/AC-DE-48-00-00-80",
        "sp-one.example/zigbee/AC-DE-48-00-00-00-00-80",
        "sp.example/ble/AC-DE-48-00-00-81",
        "sp.example/ethernet/AC-DE-48-00-00-82",
        "AC-DE-48-00-00-80", "ac:de:48:00:00:80", "acde48000080", "AC-DE-48-00-00-00-00-80",
        "Meter-SP.Example", "wifi", "zigbee", '"sp.example/wifi/AC-DE-48-00-00-80"',
    ]):
        write("identifier", f"text-{i}", s)
    write("identifier", "octets-48", bytes([0xAC, 0xDE, 0x48, 0, 0, 0x80]))
    write("identifier", "octets-64", bytes([0xAC, 0xDE, 0x48, 0, 0, 0, 0, 0x80]))


def framed(frame):
    body = cbor(frame)
    return struct.pack(">I", len(body)) + body


def link_seeds():
    frames = {
        "hello": {"Hello": {"protocol": 2, "device_id": bytes([0xAC, 0xDE, 0x48, 0, 0, 0x80]),
                            "access": "wifi", "sealed": False, "nonce": [7] * 32}},
        "start": {"Start": {"payload": b"\xd2\x84", "assistant_key": [1] * 32, "rebind": None}},
        "start-rebind": {"Start": {"payload": b"\xd2\x84", "assistant_key": [1] * 32, "rebind": b"\x00" * 64}},
        "message": {"Message": b"N\x01\x02\x03"},
        "close": "Close",
        "commit": "Commit",
        "ready": {"ReadyToCommit": {"sp_bound_id": "sp.example/wifi/AC-DE-48-00-00-80", "public_key": [2] * 32}},
        "committed": {"Committed": {"enrolled": {"sp_bound_id": "sp.example/wifi/AC-DE-48-00-00-80",
                                                 "public_key": [2] * 32}, "generation": 3}},
        "abort": {"Abort": {"code": 40, "detail": "because"}},
        "failed": {"Failed": {"code": 41, "detail": None}},
        "rebind": {"RebindSp": {"sp": "sp-two.example", "assistant_key": [1] * 32, "signature": b"\x00" * 64}},
        "rebound": {"Rebound": {"sp_bound_id": "sp-two.example/wifi/AC-DE-48-00-00-80", "generation": 4}},
        "item-owner": {"Item": {"Owner": "Alice"}},
        "item-network": {"Item": {"Network": b"\x01\x02"}},
        "item-sp": {"Item": {"ServiceProvider": {"sp": "sp.example", "endpoint": "https://sp.example",
                                                 "public_key": [3] * 32}}},
        "item-parameter": {"Item": {"Parameter": {"name": "interval", "value": "60"}}},
        "item-record": {"Item": {"Record": {"tag": 7, "value": b"\x00"}}},
        "item-end": {"Item": "End"},
        "item-identity": {"Item": {"Identity": {"sp_bound_id": "sp.example/wifi/AC-DE-48-00-00-80",
                                                "public_key": [2] * 32}}},
    }
    for name, frame in frames.items():
        write("link_frame", name, framed(frame))
    write("link_frame", "two-frames", framed(frames["hello"]) + framed(frames["close"]))


def control_json_seeds():
    seeds = {
        "resolve": {"device_id": "AC-DE-48-00-00-80", "access": "wifi", "geo": {"lat": 52.37, "lon": 4.89},
                    "subscription": "s", "service_type": "metering", "full_identifier": True},
        "resolve-answer": {"device_id": "AC-DE-48-00-00-80", "sp": "sp.example", "service_type": None,
                           "source": "table", "validated_at": "2026-01-01T00:00:00.000Z",
                           "identifier": "sp.example/wifi/AC-DE-48-00-00-80", "stale": False},
        "event": {"seq": 1, "device_id": "AC-DE-48-00-00-80", "sp": "sp-two.example", "previous_sp": "sp-one.example",
                  "service_type": None, "access": "wifi", "changed_at": "2026-01-01T00:00:00.000Z", "message_id": "ab"},
        "poll": {"events": [], "next": 0},
        "validate": {"device_id": "AC-DE-48-00-00-80", "service_type": None, "gateway": "gw-1", "geo": None},
        "verdict-confirm": {"verdict": "confirm"},
        "verdict-redirect": {"verdict": "redirect", "sp": "sp-two.example"},
        "verdict-reject": {"verdict": "reject", "reason": "no"},
        "move-ack": {"message_id": "ab", "accepted_at": "2026-01-01T00:00:00.000Z", "devices": 1, "changed": 1,
                     "created": 0, "gateways": 1, "events": 1},
        "device-report": {"identifier": "sp.example/wifi/AC-DE-48-00-00-80", "public_key": "00" * 32,
                          "device_id": "AC-DE-48-00-00-80", "relayed_by": "gw-1"},
        "error": {"error": "unknown_sp", "message": "SP x is not registered"},
        "ack": {"seq": 5},
    }
    for name, value in seeds.items():
        write("control_json", name, json.dumps(value))


def move_payload(**over):
    p = {"sender": "sp-one.example", "new_sp": "sp-two.example", "devices": ["AC-DE-48-00-00-80"],
         "service_type": "metering", "timestamp": 1_800_000_000, "nonce": bytes(range(16))}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def unsolicited_seeds():
    # Odd first byte: the payload, signed by the harness's registered sender.
    write("control_unsolicited", "payload-move", b"\x01" + cbor(move_payload()))
    write("control_unsolicited", "payload-claim",
          b"\x01" + cbor(move_payload(new_sp="sp-one.example", devices=["AC-DE-48-00-00-81", "ac:de:48:00:00:82"],
                                      nonce=bytes(range(1, 17)))))
    write("control_unsolicited", "payload-no-type", b"\x01" + cbor(move_payload(service_type=None,
                                                                               nonce=bytes(range(2, 18)))))
    # Even first byte: a whole body (COSE_Sign1, tag 18); the signature is not the sender's.
    protected = cbor({1: -8, 4: b"sp-one.example"})
    sign1 = b"\xd2" + cbor([protected, {}, cbor(move_payload()), b"\x00" * 64])
    write("control_unsolicited", "body-cose", b"\x00" + sign1)
    write("control_unsolicited", "body-untagged", b"\x00" + sign1[1:])


CONTROL_CONFIG = '''[policy]
max_age_secs = 86400
allow_stale_when_sp_down = false
sp_timeout_ms = 2000
max_redirects = 4
message_window_secs = 300
max_batch = 100000
auth_cache_ttl_ms = 1000
mapping_cache_ttl_ms = 60000

[push]
mode = "associated"
unseen_devices = "none"
max_events = 2000000

[[gateway]]
id = "gw-1"
credential = "secret"
geo = { lat = 52.37, lon = 4.89 }

[[sp]]
identity = "sp-one.example"
base_url = "http://127.0.0.1:9001"
public_key = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
may_release = true
may_move_to = ["sp-two.example"]
may_claim = false

[[mapping]]
device_id = "AC-DE-48-00-00-80"
sp = "sp-one.example"
service_type = "metering"
access = "wifi"
gateways = ["gw-1"]
validated_at = 1700000000
'''

GATEWAY_CONFIG = '''db = "gateway.sqlite"
identity_key = "identity.key"
listen = "127.0.0.1:8080"
trusted_manufacturer_keys = ["keys/acme.pub.json"]
owner = "Alice"
location = "Kitchen"
max_update_batch = 100
rebind_retry_ms = 5000

[control_server]
url = "http://127.0.0.1:9000"
gateway_id = "gw-1"
credential = "secret"
service_type = "metering"
geo = { lat = 52.37, lon = 4.89 }
timeout_ms = 5000

[sp_endpoints]
"sp-one.example" = "http://127.0.0.1:9001"

[[networks]]
ssid = "home"
passphrase = "secret"
'''


def config_seeds():
    write("control_config", "full", CONTROL_CONFIG)
    write("control_config", "empty", "")
    write("gateway_config", "full", GATEWAY_CONFIG)
    write("gateway_config", "minimal",
          'db = "g.sqlite"\nidentity_key = "k"\ntrusted_manufacturer_keys = []\n'
          '[control_server]\nurl = "http://127.0.0.1:1"\ngateway_id = "gw"\ncredential = "c"\n')


def update_seeds():
    event = {"seq": 1, "device_id": "AC-DE-48-00-00-80", "sp": "sp-two.example", "previous_sp": "sp-one.example",
             "service_type": "metering", "access": "wifi", "changed_at": "2026-01-01T00:00:00.000Z",
             "message_id": "0123"}
    stream = f"id: 1\nevent: association\ndata: {json.dumps(event)}\n\n: keep-alive\n\n"
    write("gateway_updates", "sse", b"\x07" + stream.encode())
    write("gateway_updates", "sse-one-chunk", b"\xff" + stream.encode())
    write("gateway_updates", "poll", b"\x01" + json.dumps({"events": [event], "next": 1}).encode())


def main():
    label_seeds()
    identifier_seeds()
    link_seeds()
    control_json_seeds()
    unsolicited_seeds()
    config_seeds()
    update_seeds()


if __name__ == "__main__":
    main()
