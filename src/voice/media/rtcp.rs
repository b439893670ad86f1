//! RTCP (RFC 3550 §6): the sender and receiver reports a leg exchanges with its far end, and what
//! they tell about the call — how much of our audio the far end lost, its jitter, and the round
//! trip time (from the far end's echo of our last report).
//!
//! Sans-IO: bytes in, bytes out, the clock passed in as NTP time. Parsing walks a compound packet
//! with every length checked against the datagram and returns `None` for anything malformed;
//! packet types other than SR and RR (SDES, BYE, APP, feedback) are skipped.
//!
//! Owns the wire format and the arithmetic; the socket and the schedule are
//! [`super::stream`]'s.

/// RTCP packet types.
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;

/// One report block: what a receiver says about one source (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Block {
    pub ssrc: u32,
    /// Share of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24 bits, signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last SR received from this source (0: none).
    pub lsr: u32,
    /// Delay since that SR was received, in 1/65536 s.
    pub dlsr: u32,
}

/// A sender's own counts, for an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A report read from the far end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ssrc: u32,
    /// The sender's info when it was an SR.
    pub sender: Option<SenderInfo>,
    pub blocks: Vec<Block>,
}

/// The middle 32 bits of an NTP timestamp, as LSR and round trips count time.
pub fn middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// NTP time for `unix` (a duration since 1970).
pub fn ntp(unix: std::time::Duration) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A compound packet: an SR (when `sender` is given) or an RR from `ssrc`, with `block` about
/// the far end's stream when we have heard it, then an SDES with our CNAME (RFC 3550 §6.1: every
/// compound packet carries one).
pub fn compound(ssrc: u32, sender: Option<SenderInfo>, block: Option<Block>, cname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let count = u8::from(block.is_some());
    let (pt, words) = match sender {
        Some(_) => (SR, 6 + 6 * usize::from(count)),
        None => (RR, 1 + 6 * usize::from(count)),
    };
    out.push(0x80 | count);
    out.push(pt);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.highest.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.lsr.to_be_bytes());
        out.extend_from_slice(&b.dlsr.to_be_bytes());
    }
    // SDES: one chunk (our SSRC, CNAME item, end), padded to 32 bits.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let chunk = 4 + 2 + cname.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    out.push(0x81);
    out.push(SDES);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + (padded - chunk) + 1, 0);
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The SRs and RRs in a compound packet; None when it is not well-formed RTCP.
pub fn parse(buf: &[u8]) -> Option<Vec<Report>> {
    let mut reports = Vec::new();
    let mut rest = buf;
    // The first packet of a compound must be an SR or RR (RFC 3550 §6.1): this also keeps RTP
    // that strays onto the RTCP port from being read as reports.
    if !matches!(buf.get(1), Some(&SR | &RR)) {
        return None;
    }
    while !rest.is_empty() {
        let head = rest.get(..4)?;
        if head[0] >> 6 != 2 {
            return None;
        }
        let count = usize::from(head[0] & 0x1F);
        let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
        let packet = rest.get(..len)?;
        rest = &rest[len..];
        let (sender, first_block) = match packet[1] {
            SR => {
                let info = SenderInfo {
                    ntp: (u64::from(u32_at(packet, 8)?) << 32) | u64::from(u32_at(packet, 12)?),
                    rtp_timestamp: u32_at(packet, 16)?,
                    packets: u32_at(packet, 20)?,
                    octets: u32_at(packet, 24)?,
                };
                (Some(info), 28)
            }
            RR => (None, 8),
            _ => continue,
        };
        let ssrc = u32_at(packet, 4)?;
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            let at = first_block + i * 24;
            let word = u32_at(packet, at + 4)?;
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((word << 8) as i32) >> 8;
            blocks.push(Block {
                ssrc: u32_at(packet, at)?,
                fraction_lost: (word >> 24) as u8,
                cumulative_lost: lost,
                highest: u32_at(packet, at + 8)?,
                jitter: u32_at(packet, at + 12)?,
                lsr: u32_at(packet, at + 16)?,
                dlsr: u32_at(packet, at + 20)?,
            });
        }
        reports.push(Report { ssrc, sender, blocks });
    }
    Some(reports)
}

/// The round trip a report block about our stream shows, arriving at NTP time `now`: the time
/// since our SR it echoes, less the time the far end held it (RFC 3550 §6.4.1). None when it
/// echoes no SR, or the arithmetic says the far end's clock or ours is off.
pub fn round_trip(block: &Block, now: u64) -> Option<std::time::Duration> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = middle(now).wrapping_sub(block.lsr).wrapping_sub(block.dlsr) as i32;
    // On a short path the far end's delay since our SR can come out a fraction of a millisecond
    // longer than the whole round trip (its clock reads and rounding): a round trip of nothing,
    // not a missing one (baresip on loopback did this to every other report). Further below zero
    // or above a minute, the clocks disagree or the difference wrapped.
    match rtt {
        r if r < -(1 << 16) / 10 => None,
        r if r < 0 => Some(std::time::Duration::ZERO),
        r if r < 60 << 16 => Some(std::time::Duration::from_micros(r as u64 * 1_000_000 / 65_536)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn what_we_write_reads_back() {
        let info =
            SenderInfo { ntp: ntp(Duration::from_secs(1_700_000_000)), rtp_timestamp: 160, packets: 50, octets: 8000 };
        let block = Block {
            ssrc: 7,
            fraction_lost: 13,
            cumulative_lost: -3,
            highest: 70_000,
            jitter: 40,
            lsr: 0xABCD_1234,
            dlsr: 65_536,
        };
        let bytes = compound(0xDEAD_BEEF, Some(info), Some(block), "hodi@127.0.0.1");
        assert_eq!(bytes.len() % 4, 0);
        let reports = parse(&bytes).expect("parses");
        assert_eq!(reports, vec![Report { ssrc: 0xDEAD_BEEF, sender: Some(info), blocks: vec![block] }]);
        let rr = compound(1, None, None, "x");
        assert_eq!(parse(&rr), Some(vec![Report { ssrc: 1, sender: None, blocks: vec![] }]));
    }

    #[test]
    fn malformed_rtcp_is_refused_and_rtp_is_not_read_as_reports() {
        let good = compound(1, None, Some(Block::default()), "cname");
        let rr_len = 4 * 8; // the RR with its block, before the SDES
        for cut in 0..good.len() {
            // Whatever is cut off, no panic; only the RR alone is still a compound.
            assert_eq!(parse(&good[..cut]).is_some(), cut == rr_len, "cut at {cut}");
        }
        assert_eq!(parse(&[0x80, 0, 0, 1, 0, 0, 0, 0]), None, "RTP (payload type 0)");
        assert_eq!(parse(&[0x80, 201, 0xFF, 0xFF]), None, "a length beyond the datagram");
        assert_eq!(parse(&[0x40, 201, 0, 0]), None, "version 1");
        let mut bytes = good.clone();
        bytes[0] = 0x9F; // claims 31 blocks
        assert_eq!(parse(&bytes), None);
    }

    #[test]
    fn the_round_trip_comes_from_the_echoed_report() {
        let sent = ntp(Duration::from_secs(1_000_000));
        let held = 65_536 / 2; // the far end held it half a second
        let block = Block { lsr: middle(sent), dlsr: held, ..Default::default() };
        let back = ntp(Duration::from_millis(1_000_000_000 + 580));
        let rtt = round_trip(&block, back).expect("rtt");
        assert!((rtt.as_millis() as i64 - 80).abs() <= 1, "{rtt:?}");
        assert_eq!(round_trip(&Block::default(), back), None, "no SR echoed");
        assert_eq!(
            round_trip(&Block { lsr: middle(back) + 65_536, ..Default::default() }, back),
            None,
            "from the future"
        );
        // The far end's hold a fraction of a millisecond longer than the whole trip (loopback,
        // baresip): a round trip of nothing, not none.
        let over =
            Block { lsr: middle(sent), dlsr: middle(back).wrapping_sub(middle(sent)) + 26, ..Default::default() };
        assert_eq!(round_trip(&over, back), Some(Duration::ZERO));
        let far_over = Block { dlsr: over.dlsr + 65_536 / 5, ..over };
        assert_eq!(round_trip(&far_over, back), None, "200 ms more than the trip: the clocks disagree");
    }
}
