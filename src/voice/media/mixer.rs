//! Conference mixing, one 20 ms tick at a time: every participant hears everybody else who is not
//! muted — the sum of the others' frames, never its own voice — clamped to 16 bits.
//!
//! Sans-IO and allocation-light: the caller hands in this tick's frames (None: nothing arrived
//! from that participant in time, heard as silence) and gets one output frame per participant.
//! Summing once and subtracting each participant's own frame makes a tick O(participants), not
//! O(participants²).
//!
//! Owns the arithmetic only; rooms, timing and sending are [`crate::voice::conference`]'s.

use super::audio::FRAME;

/// One participant's input this tick.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub frame: Option<&'a [i16]>,
    /// A muted participant is heard by nobody (it still hears the room).
    pub muted: bool,
}

/// What each participant hears this tick, into `out` (resized to the participants, each frame
/// [`FRAME`] samples).
pub fn mix(inputs: &[Input<'_>], out: &mut Vec<Vec<i16>>) {
    let mut total = [0i32; FRAME];
    for input in inputs.iter().filter(|i| !i.muted) {
        if let Some(frame) = input.frame {
            for (t, s) in total.iter_mut().zip(frame) {
                *t += i32::from(*s);
            }
        }
    }
    out.resize_with(inputs.len(), Vec::new);
    for (input, heard) in inputs.iter().zip(out.iter_mut()) {
        heard.clear();
        let own = input.frame.filter(|_| !input.muted);
        heard.extend((0..FRAME).map(|i| {
            let mine = own.and_then(|f| f.get(i)).map_or(0, |s| i32::from(*s));
            (total[i] - mine).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; FRAME]
    }

    #[test]
    fn each_hears_the_others_not_itself_and_the_muted_are_not_heard() {
        let (a, b, c) = (frame(100), frame(20), frame(3));
        let inputs = [
            Input { frame: Some(&a), muted: false },
            Input { frame: Some(&b), muted: false },
            Input { frame: Some(&c), muted: true },
            Input { frame: None, muted: false },
        ];
        let mut out = Vec::new();
        mix(&inputs, &mut out);
        let heard: Vec<i16> = out.iter().map(|f| f[0]).collect();
        assert_eq!(heard, [20, 100, 120, 120], "a hears b; b hears a; muted c hears both; silent d hears both");
        assert!(out.iter().all(|f| f.len() == FRAME));
    }

    #[test]
    fn loud_rooms_clip_instead_of_wrapping() {
        let loud = frame(30_000);
        let inputs = [Input { frame: Some(&loud), muted: false }; 4];
        let mut out = Vec::new();
        mix(&inputs, &mut out);
        assert!(out.iter().all(|f| f[0] == i16::MAX));
        let quiet = [Input { frame: Some(&loud[..10]), muted: false }, Input { frame: None, muted: false }];
        mix(&quiet, &mut out);
        assert_eq!((out[1][0], out[1][FRAME - 1]), (30_000, 0), "a short frame is padded with silence");
        assert_eq!(out.len(), 2);
    }
}
