//! # pbxkit-sip
//!
//! The SIP stack of pbxkit.
#![forbid(unsafe_code)]

/// This crate's version, for banners and `User-Agent` headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
