//! RTP (RFC 3550) packets and RFC 4733 telephone events, and the receiving side's bookkeeping:
//! loss, jitter, SSRC changes, and DTMF digits reported once per key press.
//!
//! Parsing returns `None` for anything malformed (short, wrong version, bad padding or extension
//! lengths); media from a peer is never trusted to be well formed.

/// One RTP packet, borrowed from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// The packet in `buf`, or None when it is not well-formed RTP. Reading is the `rtp-rs`
    /// crate's (version, CSRC list, extension and padding lengths all checked against `buf`).
    pub fn parse(buf: &'a [u8]) -> Option<Packet<'a>> {
        let rtp = rtp_rs::RtpReader::new(buf).ok()?;
        Some(Packet {
            marker: rtp.mark(),
            payload_type: rtp.payload_type(),
            sequence: rtp.sequence_number().into(),
            timestamp: rtp.timestamp(),
            ssrc: rtp.ssrc(),
            payload: rtp.payload(),
        })
    }

    /// Appends the packet's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// An RFC 4733 telephone event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let [event, flags, d0, d1, ..] = *payload else { return None };
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The key of a DTMF event (0–9, *, #, A–D); None for other events.
    pub fn digit(&self) -> Option<char> {
        match self.event {
            0..=9 => char::from_digit(u32::from(self.event), 10),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some((b'A' + self.event - 12) as char),
            _ => None,
        }
    }
}

/// Receiving statistics and DTMF de-duplication for one RTP stream.
///
/// A key press is sent as several packets with the same RTP timestamp (and the end packet three
/// times); it is reported once, on the first packet that names it. SSRC changes (a re-INVITE, a
/// transfer) restart the sequence bookkeeping instead of counting a huge gap as loss.
#[derive(Debug, Default)]
pub struct Receiver {
    ssrc: Option<u32>,
    highest: Option<u16>,
    pub received: u64,
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 §6.4.1), in timestamp units (1/8000 s for G.711).
    pub jitter: f64,
    last_transit: Option<i64>,
    last_event: Option<(u32, u32, u8)>,
    /// Sequence number wraps seen (RFC 3550's extended highest sequence number).
    cycles: u32,
}

impl Receiver {
    /// The source heard last.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// The highest sequence number received, with wraps counted in the high 16 bits.
    pub fn extended_highest(&self) -> u32 {
        self.cycles | u32::from(self.highest.unwrap_or(0))
    }

    /// Records a packet that arrived at `arrival` (in timestamp units); returns a newly pressed
    /// key when the packet is a telephone event of payload type `event_pt` that starts a press.
    pub fn on_packet(&mut self, packet: &Packet<'_>, arrival: u32, event_pt: Option<u8>) -> Option<char> {
        if self.ssrc != Some(packet.ssrc) {
            self.ssrc = Some(packet.ssrc);
            self.highest = None;
            self.last_transit = None;
            self.cycles = 0;
        }
        self.received += 1;
        match self.highest {
            None => self.highest = Some(packet.sequence),
            Some(h) => {
                let delta = packet.sequence.wrapping_sub(h);
                // Ahead (by less than half the space): count the skipped ones as lost; behind: a late
                // or duplicate packet, which changes nothing here.
                if delta != 0 && delta < 0x8000 {
                    self.lost += u64::from(delta - 1);
                    if packet.sequence < h {
                        self.cycles = self.cycles.wrapping_add(1 << 16);
                    }
                    self.highest = Some(packet.sequence);
                }
            }
        }
        let transit = i64::from(arrival) - i64::from(packet.timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);

        if Some(packet.payload_type) != event_pt {
            return None;
        }
        let event = TelephoneEvent::parse(packet.payload)?;
        let key = (packet.ssrc, packet.timestamp, event.event);
        if self.last_event == Some(key) {
            return None;
        }
        self.last_event = Some(key);
        event.digit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Packet { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc, payload }.write(&mut out);
        out
    }

    #[test]
    fn packets_round_trip_and_malformed_ones_are_refused() {
        let bytes = packet(0, 7, 160, 0xDEADBEEF, &[1, 2, 3]);
        let p = Packet::parse(&bytes).expect("parses");
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.payload),
            (0, 7, 160, 0xDEADBEEF, &[1u8, 2, 3][..])
        );
        assert!(Packet::parse(&bytes[..11]).is_none());
        let mut v1 = bytes.clone();
        v1[0] = 0x40;
        assert!(Packet::parse(&v1).is_none(), "version 1");
        let mut bad_pad = bytes.clone();
        bad_pad[0] |= 0x20;
        *bad_pad.last_mut().expect("byte") = 200;
        assert!(Packet::parse(&bad_pad).is_none(), "padding longer than the packet");
        let mut bad_ext = bytes.clone();
        bad_ext[0] |= 0x10;
        assert!(Packet::parse(&bad_ext).is_none(), "extension longer than the packet");
        let mut csrc = bytes;
        csrc[0] |= 0x0F;
        assert!(Packet::parse(&csrc).is_none(), "15 CSRCs in a 15-byte packet");
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x80) as u8).collect();
            let _ = Packet::parse(&junk);
        }
    }

    #[test]
    fn a_key_press_is_reported_once_and_loss_and_ssrc_changes_are_counted_right() {
        let mut rx = Receiver::default();
        let press = |end: bool, d: u16| TelephoneEvent { event: 1, end, volume: 10, duration: d }.bytes();
        let mut digits = Vec::new();
        // A press: three updates and three end packets, one timestamp.
        for (seq, (end, d)) in
            [(false, 160), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)].into_iter().enumerate()
        {
            let bytes = packet(101, 10 + seq as u16, 8000, 1, &press(end, d));
            digits.extend(rx.on_packet(&Packet::parse(&bytes).expect("rtp"), 8000, Some(101)));
        }
        // The same key again, later: a second press.
        let again = packet(101, 20, 16000, 1, &press(false, 160));
        digits.extend(rx.on_packet(&Packet::parse(&again).expect("rtp"), 16000, Some(101)));
        assert_eq!(digits, vec!['1', '1']);
        assert_eq!(rx.lost, 4, "sequence 16..19 never came");
        // A new SSRC starting far away is a new stream, not 40,000 lost packets.
        let other = packet(0, 60_000, 0, 2, &[0xFF; 160]);
        rx.on_packet(&Packet::parse(&other).expect("rtp"), 20000, Some(101));
        assert_eq!(rx.lost, 4);
        // Late and duplicate packets are not loss.
        let late = packet(0, 59_990, 0, 2, &[0xFF; 160]);
        rx.on_packet(&Packet::parse(&late).expect("rtp"), 20000, Some(101));
        assert_eq!((rx.lost, rx.received), (4, 9));
    }

    #[test]
    fn events_name_their_keys() {
        let keys: String =
            (0..=16).filter_map(|e| TelephoneEvent { event: e, end: false, volume: 0, duration: 0 }.digit()).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_none());
    }
}
