//! # pbxkit-rtp
//!
//! The media crate of pbxkit: RTP/RTCP packets and session statistics (RFC 3550),
//! G.711/G.722/L16 codecs (Opus behind the `opus` feature), RFC 4733 DTMF and in-band
//! detection, an adaptive jitter buffer, an N-1 conference mixer, tone generators and WAV
//! files. Every stateful piece is sans-IO: it takes packets and `Instant`s and returns
//! what to send, so it runs under tokio, in a simulation or in your own event loop.
//!
//! Status: the crate is being built (see the project issues); this release has no API yet.
#![forbid(unsafe_code)]
