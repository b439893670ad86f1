//! Audio for calls: 8 kHz mono 16-bit PCM, made from text (espeak-ng), WAV files, or tones.
//!
//! Owns turning sources into 8 kHz samples; does not own packetising or timing (see
//! [`super::player`]). Text-to-speech runs `espeak-ng` as a subprocess (offline, and its GPL code
//! stays out of our binary), bounded in time and output size.

use std::io::Cursor;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rubato::{FftFixedInOut, Resampler};
use tokio::io::AsyncReadExt;

/// Samples per second on the wire (G.711).
pub const RATE: u32 = 8000;
/// Samples per 20 ms packet.
pub const FRAME: usize = 160;
/// Longest audio a prompt may be (samples): 10 minutes.
const MAX_SAMPLES: usize = RATE as usize * 600;
/// How long espeak-ng may take for one prompt.
const TTS_TIMEOUT: Duration = Duration::from_secs(20);

/// The speaking voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    Female,
    Male,
}

/// Speaks `text` with espeak-ng; 8 kHz samples.
pub async fn speak(text: &str, voice: Voice) -> Result<Vec<i16>> {
    let variant = match voice {
        Voice::Female => "en+f3",
        Voice::Male => "en+m3",
    };
    let mut child = tokio::process::Command::new("espeak-ng")
        .args(["--stdout", "-v", variant, "-s", "160", "--", text])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running espeak-ng (install the espeak-ng package)")?;
    let mut stdout = child.stdout.take().context("espeak-ng stdout")?;
    let mut wav = Vec::new();
    // 22,050 Hz 16-bit mono: 10 minutes is ~26 MB; refuse more rather than buffer without bound.
    let limit = (MAX_SAMPLES as u64) * 6;
    let read = tokio::time::timeout(TTS_TIMEOUT, (&mut stdout).take(limit).read_to_end(&mut wav)).await;
    let _ = child.kill().await;
    match read {
        Ok(Ok(_)) => {
            fix_streamed_sizes(&mut wav);
            // Resampling is CPU work: off the async threads.
            tokio::task::spawn_blocking(move || decode_wav(&wav)).await?
        }
        Ok(Err(e)) => Err(e).context("reading espeak-ng's output"),
        Err(_) => bail!("espeak-ng took longer than {TTS_TIMEOUT:?}"),
    }
}

/// A WAV written to a pipe cannot seek back to fill in its sizes: espeak-ng leaves them at
/// 0xFFFFFFFF. Sets the RIFF and `data` sizes to what was actually written.
fn fix_streamed_sizes(wav: &mut [u8]) {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" {
        return;
    }
    let riff = u32::try_from(wav.len() - 8).unwrap_or(u32::MAX).to_le_bytes();
    wav[4..8].copy_from_slice(&riff);
    let mut pos = 12;
    while pos + 8 <= wav.len() {
        let size = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]) as usize;
        if &wav[pos..pos + 4] == b"data" {
            let actual = u32::try_from(wav.len() - pos - 8).unwrap_or(u32::MAX);
            wav[pos + 4..pos + 8].copy_from_slice(&actual.to_le_bytes());
            return;
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
}

/// A WAV file (any rate, channels, 8/16/24/32-bit or float) as 8 kHz mono samples.
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).context("not a WAV file")?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        bail!("WAV with {} channels at {} Hz", spec.channels, spec.sample_rate);
    }
    let channels = usize::from(spec.channels);
    let frames = reader.duration() as usize;
    if frames > MAX_SAMPLES * 6 {
        bail!("WAV is longer than 10 minutes");
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()?
        }
    };
    let mono: Vec<f32> = samples.chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect();
    resample(&mono, spec.sample_rate)
}

/// Mono samples in [-1, 1] at `from` Hz → 8 kHz 16-bit.
pub fn resample(input: &[f32], from: u32) -> Result<Vec<i16>> {
    let to_i16 = |v: f32| (v.clamp(-1.0, 1.0) * 32_767.0) as i16;
    if from == RATE {
        return Ok(input.iter().copied().map(to_i16).collect());
    }
    let mut resampler = FftFixedInOut::<f32>::new(from as usize, RATE as usize, 1024, 1)?;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(input.len() * RATE as usize / from as usize + 1024);
    let mut pos = 0;
    while pos + resampler.input_frames_next() <= input.len() {
        let n = resampler.input_frames_next();
        out.extend(resampler.process(&[&input[pos..pos + n]], None)?.swap_remove(0));
        pos += n;
    }
    // The tail, then silence to flush the resampler's delay.
    let mut tail = input[pos..].to_vec();
    tail.resize(resampler.input_frames_next(), 0.0);
    out.extend(resampler.process(&[&tail], None)?.swap_remove(0));
    let silence = vec![0.0; resampler.input_frames_next()];
    out.extend(resampler.process(&[&silence], None)?.swap_remove(0));
    let wanted = (input.len() as u64 * u64::from(RATE) / u64::from(from)) as usize;
    Ok(out.into_iter().skip(delay).take(wanted).map(to_i16).collect())
}

/// A frame is speech (not silence) when its mean absolute level passes about -36 dBFS; used for
/// recordings' silence timeout and trimming.
pub fn is_speech(frame: &[i16]) -> bool {
    frame.iter().map(|s| i64::from(*s).abs()).sum::<i64>() / frame.len().max(1) as i64 > 500
}

/// A 1 kHz beep of `millis`, as recording prompts use.
pub fn beep(millis: u32) -> Vec<i16> {
    let n = (RATE * millis / 1000) as usize;
    (0..n).map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / RATE as f32).sin() * 8000.0) as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).expect("writer");
        for i in 0..(rate as f32 * seconds) as usize {
            let v = ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / rate as f32).sin() * 10_000.0) as i16;
            for _ in 0..channels {
                w.write_sample(v).expect("sample");
            }
        }
        w.finalize().expect("finalize");
        out.into_inner()
    }

    #[test]
    fn wav_at_any_rate_becomes_8khz_mono_of_the_same_length_and_loudness() {
        for (rate, channels) in [(8000, 1), (22_050, 1), (44_100, 2), (16_000, 1)] {
            let samples = decode_wav(&wav(rate, channels, 0.5)).expect("decodes");
            assert!((samples.len() as i64 - 4000).abs() <= 1, "{rate} Hz: {} samples", samples.len());
            let peak = samples.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
            assert!((8_500..11_500).contains(&peak), "{rate} Hz: peak {peak}");
        }
    }

    #[test]
    fn a_streamed_wav_with_unknown_sizes_is_read_to_its_end() {
        let mut bytes = wav(22_050, 1, 0.25);
        let data = bytes.windows(4).position(|w| w == b"data").expect("data chunk");
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        fix_streamed_sizes(&mut bytes);
        assert!((decode_wav(&bytes).expect("decodes").len() as i64 - 2000).abs() <= 1);
    }

    #[tokio::test]
    async fn espeak_speaks_at_8khz() {
        let samples = speak("Welcome to Hodi.", Voice::Female).await.expect("espeak-ng (apt install espeak-ng)");
        assert!((4_000..24_000).contains(&samples.len()), "{} samples", samples.len());
        assert!(samples.iter().any(|s| s.unsigned_abs() > 3000), "speech is not silence");
    }

    #[test]
    fn garbage_is_not_a_wav() {
        assert!(decode_wav(b"RIFF....WAVEfmt nonsense").is_err());
        assert!(decode_wav(&[]).is_err());
    }
}
