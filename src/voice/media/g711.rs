//! G.711 μ-law (PCMU) and A-law (PCMA): 16-bit linear PCM to one byte per sample and back.
//!
//! Computed per sample with the ITU-T G.711 segment rules (a few shifts), so there is nothing to
//! build at start-up and nothing a peer's input can index out of range.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Linear PCM → μ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// μ-law → linear PCM.
pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Linear PCM → A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3; // 13-bit
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0x00
    };
    let s = s.min(0x0FFF);
    let byte = if s < 32 {
        (s >> 1) as u8
    } else {
        let exponent = (31 - (s as u32).leading_zeros() as i32 - 4).clamp(1, 7);
        ((exponent << 4) | ((s >> exponent) & 0x0F)) as u8
    };
    (byte | sign) ^ 0x55
}

/// A-law → linear PCM.
pub fn alaw_decode(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = if exponent == 0 { (mantissa << 4) + 8 } else { ((mantissa << 4) + 0x108) << (exponent - 1) };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// A μ-law byte as A-law (through the linear sample: one bridge leg speaks PCMU, the other PCMA).
pub fn ulaw_to_alaw(byte: u8) -> u8 {
    alaw_encode(ulaw_decode(byte))
}

/// An A-law byte as μ-law.
pub fn alaw_to_ulaw(byte: u8) -> u8 {
    ulaw_encode(alaw_decode(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcoding_keeps_the_level_within_a_step() {
        for byte in 0..=255u8 {
            let (u, a) = (i32::from(ulaw_decode(byte)), i32::from(alaw_decode(ulaw_to_alaw(byte))));
            assert!((u - a).abs() <= (u.abs() / 16).max(16) + 16, "μ-law {byte:#04x}: {u} became {a}");
            let (a, u) = (i32::from(alaw_decode(byte)), i32::from(ulaw_decode(alaw_to_ulaw(byte))));
            assert!((u - a).abs() <= (a.abs() / 16).max(16) + 132, "A-law {byte:#04x}: {a} became {u}");
        }
    }

    #[test]
    fn known_code_points() {
        // Silence and full scale, from the G.711 tables.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x2A), -32_256);
        assert_eq!(alaw_decode(0xAA), 32_256);
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for byte in 0..=255u8 {
            let u = ulaw_decode(byte);
            // 0x7F and 0xFF are both zero in μ-law; zero encodes as 0xFF.
            if byte != 0x7F {
                assert_eq!(ulaw_encode(u), byte, "μ-law {byte:#04x} → {u}");
            }
            assert_eq!(alaw_encode(alaw_decode(byte)), byte, "A-law {byte:#04x}");
        }
    }

    #[test]
    fn round_trip_error_stays_within_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(ulaw_decode(ulaw_encode(s)));
            let a = i32::from(alaw_decode(alaw_encode(s)));
            let tolerance = (i32::from(s).abs() / 16).max(16);
            assert!((u - i32::from(s)).abs() <= tolerance + 132, "μ-law {s} → {u}");
            assert!((a - i32::from(s)).abs() <= tolerance + 16, "A-law {s} → {a}");
        }
    }
}
