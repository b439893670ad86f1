//! SDP offer/answer (RFC 3264) for one audio stream: PCMU, PCMA and RFC 4733 telephone-event.
//!
//! Parsing is line based and tolerant of what it does not use; an offer without an audio stream
//! or without a codec we speak is refused with a reason (SIP 488).

use std::net::{IpAddr, SocketAddr};

/// A codec we send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// What the far end offered (or answered), as far as we use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    /// Where to send RTP.
    pub remote: SocketAddr,
    pub codec: Codec,
    /// Payload type of telephone-event, if offered.
    pub events: Option<u8>,
    /// `a=sendonly` / `a=inactive`: the far end put us on hold.
    pub on_hold: bool,
}

/// Reads an offer or answer; picks the first codec in the far end's order that we speak.
pub fn parse(sdp: &str) -> Result<Media, String> {
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut formats: Vec<u8> = Vec::new();
    let mut rtpmap: Vec<(u8, String)> = Vec::new();
    let mut on_hold = false;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim) {
        let Some((kind, value)) = line.split_once('=') else { continue };
        match kind {
            "m" => {
                in_audio = value.starts_with("audio ") && port.is_none();
                if in_audio {
                    let mut parts = value.split_whitespace().skip(1);
                    port = parts.next().and_then(|p| p.split('/').next()?.parse().ok());
                    let _proto = parts.next();
                    formats = parts.filter_map(|f| f.parse().ok()).collect();
                }
            }
            "c" => {
                let addr = value.split_whitespace().nth(2).and_then(|a| a.split('/').next()?.parse().ok());
                if in_audio {
                    media_addr = addr;
                } else if port.is_none() {
                    session_addr = addr;
                }
            }
            "a" if in_audio => {
                if let Some(map) = value.strip_prefix("rtpmap:") {
                    if let Some((pt, name)) = map.split_once(' ') {
                        if let Ok(pt) = pt.parse() {
                            rtpmap.push((pt, name.to_ascii_lowercase()));
                        }
                    }
                } else if value == "sendonly" || value == "inactive" {
                    on_hold = true;
                }
            }
            _ => {}
        }
    }
    let port = port.ok_or("no audio stream in the SDP")?;
    let addr = media_addr.or(session_addr).ok_or("no connection address (c=) for the audio stream")?;
    let name_of = |pt: u8| rtpmap.iter().find(|(p, _)| *p == pt).map(|(_, n)| n.as_str());
    let codec = formats
        .iter()
        .find_map(|&pt| match (pt, name_of(pt)) {
            (0, None) | (_, Some("pcmu/8000")) | (_, Some("pcmu/8000/1")) => Some(Codec::Pcmu),
            (8, None) | (_, Some("pcma/8000")) | (_, Some("pcma/8000/1")) => Some(Codec::Pcma),
            _ => None,
        })
        .ok_or("no codec in common: Hodi speaks PCMU and PCMA")?;
    let events = formats.iter().copied().find(|&pt| name_of(pt).is_some_and(|n| n.starts_with("telephone-event/8000")));
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_multicast() || broadcast {
        // One INVITE must not make Hodi stream to a group or a whole network.
        return Err(format!("the connection address {addr} is not a unicast address"));
    }
    // Port 0 or address 0.0.0.0 is the old way of saying hold.
    let on_hold = on_hold || port == 0 || addr.is_unspecified();
    Ok(Media { remote: SocketAddr::new(addr, port), codec, events, on_hold })
}

/// A far end's SDP body, read and checked as media Hodi may send to from `local`.
pub fn read(body: &[u8], local: IpAddr) -> Result<Media, String> {
    let media = parse(std::str::from_utf8(body).map_err(|_| "SDP is not text".to_string())?)?;
    reachable(&media, local)?;
    Ok(media)
}

/// Whether Hodi, sending from `local`, may send media where `media` says: the same address
/// family, and not this host's loopback unless Hodi's own media is on loopback (else an INVITE
/// could aim our RTP at services on this machine).
pub fn reachable(media: &Media, local: IpAddr) -> Result<(), String> {
    let remote = media.remote.ip();
    if media.on_hold && remote.is_unspecified() {
        return Ok(());
    }
    if remote.is_ipv4() != local.is_ipv4() {
        return Err(format!("the connection address {remote} is not reachable from Hodi's media address {local}"));
    }
    if remote.is_loopback() && !local.is_loopback() {
        return Err(format!("the connection address {remote} is this host's loopback"));
    }
    Ok(())
}

/// Our side of the session: `local` is where we receive RTP.
pub fn describe(local: SocketAddr, codec: Codec, events: Option<u8>, session_id: u64, version: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut formats = codec.payload_type().to_string();
    if let Some(pt) = events {
        formats.push_str(&format!(" {pt}"));
    }
    let mut sdp = format!(
        "v=0\r\no=hodi {session_id} {version} IN {family} {ip}\r\ns=hodi\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {formats}\r\na=rtpmap:{} {}/8000\r\n",
        local.port(),
        codec.payload_type(),
        codec.name()
    );
    if let Some(pt) = events {
        sdp.push_str(&format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"));
    }
    sdp.push_str("a=ptime:20\r\na=sendrecv\r\n");
    sdp
}

/// Our offer for a call we place: both codecs, `prefer` first, and telephone-event 101.
pub fn offer(local: SocketAddr, session_id: u64, prefer: Codec) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let formats = match prefer {
        Codec::Pcmu => "0 8",
        Codec::Pcma => "8 0",
    };
    format!(
        "v=0\r\no=hodi {session_id} 1 IN {family} {ip}\r\ns=hodi\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {formats} 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn an_offer_picks_the_callers_first_codec_and_events() {
        let m = parse(OFFER).expect("offer");
        assert_eq!(
            m,
            Media {
                remote: "127.0.0.1:6000".parse().expect("addr"),
                codec: Codec::Pcma,
                events: Some(101),
                on_hold: false
            }
        );
        let answer = describe("127.0.0.1:7000".parse().expect("addr"), m.codec, m.events, 1, 1);
        let back = parse(&answer).expect("our answer parses");
        assert_eq!((back.codec, back.events, back.remote.port()), (Codec::Pcma, Some(101), 7000));
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_hold_is_seen() {
        let m = parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n").expect("offer");
        assert_eq!((m.codec, m.events, m.on_hold), (Codec::Pcmu, None, true));
        let m = parse("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n").expect("old-style hold");
        assert!(m.on_hold);
    }

    #[test]
    fn offers_we_cannot_take_say_why() {
        assert!(parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
            .unwrap_err()
            .contains("no codec"));
        assert!(parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n").unwrap_err().contains("no audio"));
        assert!(parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap_err().contains("connection address"));
        assert!(parse("garbage\0\u{1}").is_err());
        for group in ["224.0.0.1", "239.1.2.3", "255.255.255.255"] {
            let offer = format!("v=0\r\nc=IN IP4 {group}\r\nm=audio 4000 RTP/AVP 0\r\n");
            assert!(parse(&offer).unwrap_err().contains("not a unicast address"), "{group}");
        }
        let v6 = parse("v=0\r\nc=IN IP6 ff02::1\r\nm=audio 4000 RTP/AVP 0\r\n");
        assert!(v6.unwrap_err().contains("unicast"));
    }

    #[test]
    fn media_hodi_cannot_or_must_not_reach_is_refused() {
        let at = |sdp: &str| parse(sdp).expect("parses");
        let v6 = at("v=0\r\nc=IN IP6 2001:db8::1\r\nm=audio 4000 RTP/AVP 0\r\n");
        let loopback = at("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n");
        let public = at("v=0\r\nc=IN IP4 192.0.2.7\r\nm=audio 4000 RTP/AVP 0\r\n");
        let hold = at("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n");
        let (lo, lan): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [10, 0, 0, 2].into());
        assert!(reachable(&v6, lan).unwrap_err().contains("not reachable"));
        assert!(reachable(&loopback, lan).unwrap_err().contains("loopback"));
        assert!(reachable(&loopback, lo).is_ok() && reachable(&public, lan).is_ok() && reachable(&hold, lan).is_ok());
    }
}
