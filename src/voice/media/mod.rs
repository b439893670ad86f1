//! Media: G.711 codecs, RTP packets and receiving statistics, and audio sources at 8 kHz.

pub mod audio;
pub mod g711;
pub mod prompts;
pub mod rtp;
pub mod stream;
