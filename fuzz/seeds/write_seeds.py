#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets that read wire formats: RSocket frames,
SIP messages, SDP bodies and RTP streams, one file each under <out>/<target>/seed-*.

The SDK-encoded command seeds (app_command, simulator_command) come from capture_commands.js.
Seeds live in fuzz/seeds/<target>/ and stay as written; what fuzzing runs found lives beside them
in fuzz/corpus/<target>/ (minimised with `cargo fuzz cmin`). Both are kept in the repository and
replayed by tests/fuzz_corpora.rs.

    python3 fuzz/seeds/write_seeds.py fuzz/seeds
"""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds"


def write(target, name, data):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


# --- RSocket 1.0 frames -------------------------------------------------------------------------
M, FOLLOWS, COMPLETE, NEXT, RESPOND = 0x100, 0x80, 0x40, 0x20, 0x80


def header(stream, kind, flags):
    return struct.pack(">IH", stream, (kind << 10) | flags)


def u24(n):
    return struct.pack(">I", n)[1:]


def with_metadata(metadata, data):
    return u24(len(metadata)) + metadata + data


def setup(metadata, data):
    mime = b"application/octet-stream"
    return (header(0, 0x01, M) + struct.pack(">HHII", 1, 0, 60_000, 180_000)
            + bytes([len(mime)]) + mime + bytes([len(mime)]) + mime + with_metadata(metadata, data))


FRAMES = {
    "setup": setup(b"\x0a\x03org\x12\x03app\x1a\x03key", b""),
    "setup-resume-token": header(0, 0x01, M | 0x80) + struct.pack(">HHII", 1, 0, 1000, 5000)
    + struct.pack(">H", 4) + b"tokn" + b"\x00\x00" + with_metadata(b"", b""),
    "keepalive": header(0, 0x03, RESPOND) + struct.pack(">Q", 42) + b"data",
    "request-response": header(1, 0x04, 0) + b"\x0a\x02hi",
    "request-response-metadata": header(3, 0x04, M) + with_metadata(b"meta", b"payload"),
    "request-fnf": header(5, 0x05, 0) + b"fire",
    "request-stream": header(7, 0x06, 0) + struct.pack(">I", 128) + b"subscribe",
    "request-channel": header(9, 0x07, COMPLETE) + struct.pack(">I", 1) + b"ch",
    "request-n": header(7, 0x08, 0) + struct.pack(">I", 0x7FFFFFFF),
    "cancel": header(7, 0x09, 0),
    "payload-next-complete": header(1, 0x0A, NEXT | COMPLETE) + b"reply",
    "payload-fragment": header(11, 0x0A, NEXT | FOLLOWS | M) + with_metadata(b"m", b"part one"),
    "error": header(0, 0x0B, 0) + struct.pack(">I", 0x00000003) + b"rejected setup",
    "metadata-push": header(0, 0x0C, M) + b"pushed",
    "lease": header(0, 0x02, 0) + struct.pack(">II", 1000, 10),
    "resume": header(0, 0x0D, 0) + struct.pack(">HHH", 1, 0, 2) + b"tk" + struct.pack(">QQ", 1, 2),
    "resume-ok": header(0, 0x0E, 0) + struct.pack(">Q", 9),
    "ext": header(1, 0x3F, 0x200) + struct.pack(">I", 7) + b"ext",
}
for name, frame in FRAMES.items():
    write("frame_decode", name, frame)
# A TCP stream: three frames, each after its 24-bit length, as the length-prefixed codec reads it.
stream = b"".join(u24(len(f)) + f for f in (FRAMES["setup"], FRAMES["request-response"], FRAMES["keepalive"]))
write("frame_decode", "length-prefixed-stream", stream)

# --- SIP ----------------------------------------------------------------------------------------
SDP_OFFER = (
    "v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)


def sip(start, headers, body=""):
    lines = [start] + headers + ["Content-Length: %d" % len(body.encode()), "", ""]
    return ("\r\n".join(lines) + body).encode()


VIA = "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport"
FROM = "From: sipp <sip:+254711000001@127.0.0.1:5061>;tag=1SIPpTag001"
TO = "To: <sip:+254711082000@127.0.0.1:5060>"
CALL = "Call-ID: 1-4242@127.0.0.1"
write("sip_message", "invite", sip("INVITE sip:+254711082000@127.0.0.1:5060 SIP/2.0", [
    VIA, FROM, TO, CALL, "CSeq: 1 INVITE", "Contact: sip:sipp@127.0.0.1:5061",
    "Max-Forwards: 70", "Subject: Performance Test", "Content-Type: application/sdp"], SDP_OFFER))
write("sip_message", "invite-compact", sip("INVITE sip:+254711082000@127.0.0.1 SIP/2.0", [
    "v: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-2", "f: <sip:+254711000001@127.0.0.1>;tag=a",
    "t: <sip:+254711082000@127.0.0.1>", "i: compact@127.0.0.1", "CSeq: 1 INVITE",
    "m: <sip:a@127.0.0.1:5061>", "c: application/sdp",
    "Record-Route: <sip:proxy.example;lr>, <sip:edge.example;lr>"], SDP_OFFER))
write("sip_message", "ack", sip("ACK sip:+254711082000@127.0.0.1:5060 SIP/2.0", [
    VIA.replace("-1-0", "-1-2"), FROM, TO + ";tag=hodi1", CALL, "CSeq: 1 ACK", "Max-Forwards: 70"]))
write("sip_message", "bye", sip("BYE sip:+254711082000@127.0.0.1:5060 SIP/2.0", [
    VIA.replace("-1-0", "-1-3"), FROM, TO + ";tag=hodi1", CALL, "CSeq: 2 BYE", "Max-Forwards: 70"]))
write("sip_message", "options", sip("OPTIONS sip:127.0.0.1:5060 SIP/2.0", [
    VIA, FROM, "To: <sip:127.0.0.1:5060>", "Call-ID: ping@127.0.0.1", "CSeq: 1 OPTIONS",
    "Accept: application/sdp"]))
write("sip_message", "ringing", sip("SIP/2.0 180 Ringing", [
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKhodi", "From: <sip:hodi@127.0.0.1>;tag=h1",
    "To: <sip:+254711000002@127.0.0.1:5062>;tag=b1", "Call-ID: out-1@127.0.0.1", "CSeq: 1 INVITE"]))
write("sip_message", "ok", sip("SIP/2.0 200 OK", [
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKhodi", "From: <sip:hodi@127.0.0.1>;tag=h1",
    "To: <sip:+254711000002@127.0.0.1:5062>;tag=b1", "Call-ID: out-1@127.0.0.1", "CSeq: 1 INVITE",
    "Contact: <sip:b@127.0.0.1:5062>", "Content-Type: application/sdp"], SDP_OFFER))
write("sip_message", "keepalive-crlf", b"\r\n\r\n" + sip("OPTIONS sip:127.0.0.1 SIP/2.0", [
    VIA, FROM, "To: <sip:127.0.0.1>", "Call-ID: ka@127.0.0.1", "CSeq: 7 OPTIONS"]))

# --- SDP ----------------------------------------------------------------------------------------
write("sdp", "offer", SDP_OFFER.encode())
write("sdp", "hold", SDP_OFFER.replace("127.0.0.1\r\nt", "0.0.0.0\r\nt").replace("sendrecv", "sendonly").encode())
write("sdp", "pcma-only", SDP_OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 8").encode())
write("sdp", "multicast", SDP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 224.2.1.1/127").encode())
write("sdp", "ipv6-two-media", (
    "v=0\r\no=- 2 2 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
    "m=video 7000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "m=audio 7002 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n").encode())


# --- RTP: datagrams, each after a 2-byte length ----------------------------------------------------
def rtp(seq, ts, ssrc, payload, pt=0, marker=False, csrc=(), extension=None, padding=0):
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension is not None else 0) | len(csrc)
    out = struct.pack(">BBHII", first, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    out += b"".join(struct.pack(">I", c) for c in csrc)
    if extension is not None:
        out += struct.pack(">HH", 0xBEDE, len(extension) // 4) + extension
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes([padding])
    return out


def stream_of(packets):
    return b"".join(struct.pack(">H", len(p)) + p for p in packets)


pcmu = bytes([0xFF]) * 160
write("rtp", "pcmu-stream", stream_of(rtp(100 + i, 160 * i, 0x1234, pcmu) for i in range(6)))


def key_press(digit, ssrc=0x1234, seq=200, ts=8000):
    packets = []
    for i, (duration, end) in enumerate([(160, False), (320, False), (480, True), (480, True), (480, True)]):
        event = struct.pack(">BBH", digit, (0x80 if end else 0) | 10, duration)
        packets.append(rtp(seq + i, ts, ssrc, event, pt=101, marker=(i == 0)))
    return packets


write("rtp", "key-press", stream_of(key_press(5)))
write("rtp", "csrc-extension-padding", stream_of([
    rtp(1, 160, 0xABCD, pcmu[:80], csrc=(1, 2), extension=b"\x10\xff\x00\x00", padding=4)]))
def rtcp_sr_rr(ssrc, about):
    """An RTCP compound (RFC 3550): a sender report with one report block about `about`, then an
    SDES with a CNAME — what a phone sends on the RTP port when it multiplexes RTCP."""
    sr = struct.pack("!BBHI", 0x81, 200, 12, ssrc)
    sr += struct.pack("!IIIII", 0xE8D4A510, 0x80000000, 160 * 50, 50, 8000)
    sr += struct.pack("!IIIIII", about, (3 << 24) | 2, 0x10064, 40, 0x0A510800, 0x8000)
    cname = b"phone@127.0.0.1"
    chunk = struct.pack("!I", ssrc) + bytes([1, len(cname)]) + cname + b"\0"
    chunk += b"\0" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return sr + sdes


write("rtp", "rtp-then-rtcp", stream_of([rtp(1, 160, 0x1234, pcmu), rtcp_sr_rr(0x1234, 0x5678),
                                         rtp(2, 320, 0x1234, pcmu)]))
write("rtp", "ssrc-change-and-loss", stream_of(
    [rtp(10, 1600, 0x1, pcmu), rtp(11, 1760, 0x1, pcmu), rtp(15, 2400, 0x1, pcmu),
     rtp(9000, 0, 0x2, pcmu), rtp(8999, 0xFFFFFF60, 0x2, pcmu), rtp(0xFFFF, 160, 0x2, pcmu),
     rtp(0, 320, 0x2, pcmu)] + key_press(11, ssrc=0x2, seq=1)))
