//! Media: G.711 codecs, RTP packets and receiving statistics, RTCP reports and the quality they
//! give (MOS), and audio sources at 8 kHz.

pub mod audio;
pub mod g711;
pub mod mixer;
pub mod prompts;
pub mod quality;
pub mod rtcp;
pub mod rtp;
pub mod stream;
