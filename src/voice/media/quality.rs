//! Call quality as a mean opinion score: the ITU-T G.107 E-model, simplified for G.711 the way
//! monitoring tools do it (Cole & Rosenbluth, "Voice over IP performance monitoring", 2001).
//!
//! R = 93.2 − Id − Ie,eff: Id charges the one-way delay (the network's, half the round trip,
//! plus a jitter buffer of twice the jitter and 10 ms of packetization), Ie,eff the packet loss
//! (G.711's equipment impairment is 0; its robustness to random loss Bpl is 4.3 without loss
//! concealment, G.113 Appendix I: Hodi conceals nothing, and phones are not assumed to).
//! MOS = 1 + 0.035R + 7·10⁻⁶·R(R − 60)(100 − R), between 1 and 4.5.
//!
//! Owns the arithmetic only.

/// What a leg's statistics say about its audio.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Conditions {
    /// Share of packets lost, 0 to 1.
    pub loss: f64,
    pub jitter_ms: f64,
    /// The round trip, when RTCP measured one (else the network delay counts as none).
    pub rtt_ms: Option<f64>,
}

/// The E-model's R factor.
pub fn r_factor(c: Conditions) -> f64 {
    let delay = c.rtt_ms.unwrap_or(0.0).max(0.0) / 2.0 + 2.0 * c.jitter_ms.max(0.0) + 10.0;
    let id = 0.024 * delay + if delay > 177.3 { 0.11 * (delay - 177.3) } else { 0.0 };
    let ppl = (c.loss.clamp(0.0, 1.0)) * 100.0;
    let ie_eff = 95.0 * ppl / (ppl + 4.3);
    93.2 - id - ie_eff
}

/// The mean opinion score, 1 (bad) to 4.5 (the best narrowband audio can score).
pub fn mos(c: Conditions) -> f64 {
    let r = r_factor(c);
    if r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(loss: f64, jitter_ms: f64, rtt_ms: Option<f64>) -> f64 {
        mos(Conditions { loss, jitter_ms, rtt_ms })
    }

    #[test]
    fn a_clean_line_scores_what_g711_can_and_impairments_lower_it() {
        let clean = at(0.0, 0.0, Some(1.0));
        assert!((4.39..=4.42).contains(&clean), "clean G.711: {clean}");
        // Each impairment alone lowers the score, and more of it lowers it more.
        assert!(at(0.01, 0.0, None) < clean && at(0.05, 0.0, None) < at(0.01, 0.0, None));
        assert!(at(0.0, 30.0, None) < clean);
        assert!(at(0.0, 0.0, Some(600.0)) < at(0.0, 0.0, Some(100.0)));
        // Landmarks: 1% random loss without concealment is already "fair"; 20% is bad.
        let one = at(0.01, 0.0, None);
        assert!((3.4..=3.9).contains(&one), "1% loss: {one}");
        assert!(at(0.2, 0.0, None) < 2.0);
        assert_eq!(at(1.0, 500.0, Some(5000.0)), 1.0);
        assert!(at(f64::NAN.max(0.0), 0.0, None) <= 4.5);
    }
}
