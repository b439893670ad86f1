//! Long SMS from customers, put back together: a phone splits a long text into parts, each with a
//! user data header (UDH) naming the message (a reference), the number of parts and its place;
//! the SMSC delivers them as separate deliver_sm, in any order and on any bind.
//!
//! Sans-IO: parts go in with the time, whole messages (or, after [`WAIT`], what arrived of one)
//! come out. Everything held is bounded: at most [`MAX_PENDING`] messages wait, each of at most
//! [`MAX_PARTS`] parts of at most [`MAX_PART_BYTES`]; past that, the oldest waiting message is
//! let go (as far as it arrived) rather than growing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the parts of a message wait for the rest before what arrived is passed on.
pub const WAIT: Duration = Duration::from_secs(120);
/// Messages waiting for parts at once.
pub const MAX_PENDING: usize = 1_024;
/// Parts one message may have (a UDH allows 255; phones send a handful).
pub const MAX_PARTS: u8 = 32;
/// The user data of one part (an SMS is at most 140 octets).
pub const MAX_PART_BYTES: usize = 160;

/// Where a part belongs, read from its UDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

/// Splits a short message with a UDH into its place (if the header has a concatenation element)
/// and the user data after the header.
pub fn split_udh(bytes: &[u8]) -> (Option<Place>, &[u8]) {
    let Some(&len) = bytes.first() else { return (None, bytes) };
    let header = bytes.get(1..1 + len as usize).unwrap_or_default();
    let body = bytes.get(1 + len as usize..).unwrap_or_default();
    let mut place = None;
    let mut i = 0;
    while i + 2 <= header.len() {
        let (iei, ie_len) = (header[i], header[i + 1] as usize);
        let Some(data) = header.get(i + 2..i + 2 + ie_len) else { break };
        place = match (iei, data) {
            (0x00, [reference, total, seq]) => {
                Some(Place { reference: u16::from(*reference), total: *total, seq: *seq })
            }
            (0x08, [hi, lo, total, seq]) => {
                Some(Place { reference: u16::from_be_bytes([*hi, *lo]), total: *total, seq: *seq })
            }
            _ => place,
        };
        i += 2 + ie_len;
    }
    (place.filter(|p| p.total > 1 && p.seq >= 1 && p.seq <= p.total), body)
}

/// One message's identity: who sent it to whom, its reference and size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    from: String,
    to: String,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Waiting<C> {
    parts: Vec<Option<Vec<u8>>>,
    coding: C,
    since: Instant,
}

/// A message as it comes out: its parts' user data joined (missing parts left out), its coding,
/// and whether every part arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined<C> {
    pub from: String,
    pub to: String,
    pub data: Vec<u8>,
    pub coding: C,
    pub complete: bool,
}

/// Parts waiting for the rest of their message. `C` is the data coding (of the first part).
#[derive(Debug)]
pub struct Reassembly<C> {
    waiting: HashMap<Key, Waiting<C>>,
}

impl<C> Default for Reassembly<C> {
    fn default() -> Self {
        Reassembly { waiting: HashMap::new() }
    }
}

impl<C: Clone> Reassembly<C> {
    /// Adds a part; the messages it completes or pushes out (at most two).
    pub fn add(&mut self, from: &str, to: &str, place: Place, coding: C, data: &[u8], now: Instant) -> Vec<Joined<C>> {
        let mut out = Vec::new();
        let data = &data[..data.len().min(MAX_PART_BYTES)];
        if place.total > MAX_PARTS {
            // Too long to hold: passed on part by part.
            out.push(Joined { from: from.into(), to: to.into(), data: data.to_vec(), coding, complete: false });
            return out;
        }
        let key = Key { from: from.into(), to: to.into(), reference: place.reference, total: place.total };
        if !self.waiting.contains_key(&key) && self.waiting.len() >= MAX_PENDING {
            if let Some(oldest) = self.waiting.iter().min_by_key(|(_, w)| w.since).map(|(k, _)| k.clone()) {
                out.extend(self.take(&oldest));
            }
        }
        let waiting = self.waiting.entry(key.clone()).or_insert_with(|| Waiting {
            parts: vec![None; place.total as usize],
            coding,
            since: now,
        });
        // A part sent twice keeps its first copy.
        if let Some(slot @ None) = waiting.parts.get_mut(place.seq as usize - 1) {
            *slot = Some(data.to_vec());
        }
        if waiting.parts.iter().all(Option::is_some) {
            out.extend(self.take(&key));
        }
        out
    }

    /// Messages that waited longer than [`WAIT`], as far as they arrived.
    pub fn expired(&mut self, now: Instant) -> Vec<Joined<C>> {
        let old: Vec<Key> =
            self.waiting.iter().filter(|(_, w)| now.duration_since(w.since) >= WAIT).map(|(k, _)| k.clone()).collect();
        old.iter().filter_map(|k| self.take(k)).collect()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn take(&mut self, key: &Key) -> Option<Joined<C>> {
        let w = self.waiting.remove(key)?;
        let complete = w.parts.iter().all(Option::is_some);
        Some(Joined {
            from: key.from.clone(),
            to: key.to.clone(),
            data: w.parts.into_iter().flatten().flatten().collect(),
            coding: w.coding,
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udh8(reference: u8, total: u8, seq: u8, text: &str) -> Vec<u8> {
        let mut v = vec![5, 0x00, 3, reference, total, seq];
        v.extend_from_slice(text.as_bytes());
        v
    }

    #[test]
    fn headers_name_the_part_with_8_or_16_bit_references() {
        let bytes = udh8(7, 3, 2, "hello");
        assert_eq!(split_udh(&bytes), (Some(Place { reference: 7, total: 3, seq: 2 }), &b"hello"[..]));
        let sixteen = [6, 0x08, 4, 0x01, 0x02, 2, 1, b'h', b'i'];
        assert_eq!(split_udh(&sixteen), (Some(Place { reference: 0x0102, total: 2, seq: 1 }), &b"hi"[..]));
        // Another element first (a port address), then the concatenation.
        let ports = [11, 0x05, 4, 0, 1, 0, 2, 0x00, 3, 9, 2, 2, b'x'];
        assert_eq!(split_udh(&ports).0, Some(Place { reference: 9, total: 2, seq: 2 }));
        // Broken headers: no place, never a panic.
        assert_eq!(split_udh(&[]).0, None);
        assert_eq!(split_udh(&[200, 0, 3]).0, None, "a header longer than the message");
        assert_eq!(split_udh(&[5, 0x00, 9, 1, 2, 3]).0, None, "an element longer than the header");
        assert_eq!(split_udh(&udh8(1, 2, 3, "")).0, None, "part 3 of 2");
        assert_eq!(split_udh(&udh8(1, 1, 1, "")).0, None, "one part is no concatenation");
    }

    #[test]
    fn parts_in_any_order_come_out_once_and_whole() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        let place = |seq| Place { reference: 1, total: 3, seq };
        assert!(r.add("+2547", "21356", place(3), 0, b"three", now).is_empty());
        assert!(r.add("+2547", "21356", place(1), 0, b"one ", now).is_empty());
        assert!(r.add("+2547", "21356", place(1), 0, b"dup ", now).is_empty(), "a repeated part is ignored");
        // The same reference from someone else is another message.
        assert!(r.add("+2548", "21356", place(2), 0, b"other", now).is_empty());
        let out = r.add("+2547", "21356", place(2), 0, b"two ", now);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].data.as_slice(), out[0].complete), (&b"one two three"[..], true));
        assert_eq!(r.waiting(), 1);
    }

    #[test]
    fn what_waits_is_bounded_in_time_count_and_size() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        r.add("a", "b", Place { reference: 1, total: 2, seq: 1 }, 0, &[b'x'; 500], now);
        assert!(r.expired(now + WAIT / 2).is_empty());
        let late = r.expired(now + WAIT);
        assert_eq!((late.len(), late[0].complete, late[0].data.len()), (1, false, MAX_PART_BYTES));
        for i in 0..MAX_PENDING as u16 + 10 {
            r.add("a", "b", Place { reference: i, total: 2, seq: 1 }, 0, b"x", now + Duration::from_millis(i.into()));
        }
        assert_eq!(r.waiting(), MAX_PENDING);
        let huge = r.add("a", "b", Place { reference: 1, total: 200, seq: 5 }, 0, b"y", now);
        assert_eq!((huge.len(), huge[0].complete), (1, false), "a 200-part message is not held");
    }
}
