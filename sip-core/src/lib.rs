//! # pbxkit-sip
//!
//! The SIP stack of pbxkit: messages, URIs and headers (RFC 3261), stream framing,
//! SDP with the RFC 3264 offer/answer helper ([`sdp`]), digest authentication for
//! servers and clients ([`digest`]), Q.850 causes and the Reason header ([`cause`]),
//! the RFC 3261 transaction layer ([`transaction`]), dialogs and session timers
//! ([`dialog`]), registrar and registration client ([`registrar`], [`registration`]),
//! the notifier side of event subscriptions ([`subscription`]: message waiting, busy
//! lamps), and the legs of a back-to-back user agent ([`b2bua`]); an async endpoint over UDP
//! and TCP comes with the `tokio` feature.
//!
//! Parsing is zero-copy: a [`Message`] keeps the [`bytes::Bytes`] it was received in,
//! header values are slices of it, and typed values ([`Via`], [`NameAddr`], [`CSeq`]...)
//! are parsed when asked for. The headers every transaction needs (Via, From, To,
//! Call-ID, CSeq, Content-Length) are checked by [`Message::parse`], so a server can
//! answer a message that parses, and answer `400` with [`ParseError::reason_phrase`]
//! one that does not. No input makes the parser panic.
//!
//! ```
//! use pbxkit_sip::{Message, StatusCode};
//!
//! let invite = Message::parse(
//!     &b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
//!        Max-Forwards: 70\r\n\
//!        To: Bob <sip:bob@biloxi.example.com>\r\n\
//!        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
//!        Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
//!        CSeq: 314159 INVITE\r\n\
//!        Content-Length: 0\r\n\r\n"[..],
//! )?;
//! assert_eq!(invite.top_via()?.branch(), Some("z9hG4bK776asdhds"));
//! assert_eq!(invite.from()?.tag(), Some("1928301774"));
//! assert_eq!(invite.cseq()?.seq, 314159);
//!
//! let ringing = Message::response_to(&invite, StatusCode::RINGING, Some("a6c85cf"));
//! assert_eq!(ringing.to()?.tag(), Some("a6c85cf"));
//! let wire = ringing.to_bytes();
//! assert!(wire.starts_with(b"SIP/2.0 180 Ringing\r\n"));
//! assert_eq!(Message::parse(wire)?, ringing);
//! # Ok::<(), pbxkit_sip::ParseError>(())
//! ```
//!
//! Challenging a REGISTER and checking the answer (time is an input: Unix seconds):
//!
//! ```
//! use pbxkit_sip::digest::{self, Algorithm, DigestServer};
//!
//! let mut server = DigestServer::new("pbxkit", b"a random secret of 32 bytes or more", 300);
//! let challenge = server.challenge(1_700_000_000, Algorithm::Md5, false);
//! // What a phone sends back (here computed by our client side).
//! let credentials = digest::respond(&challenge, "REGISTER", "sip:pbx.example.com", "1000", "pw", "c0ffee", 1)
//!     .expect("a Digest challenge");
//! let who = server.verify(&credentials, "REGISTER", 1_700_000_005, |user| {
//!     (user == "1000").then(|| "pw".to_owned())
//! });
//! assert_eq!(who.map(|v| v.username).as_deref(), Ok("1000"));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod b2bua;
mod bytestr;
pub mod cause;
pub mod dialog;
pub mod digest;
#[cfg(feature = "tokio")]
pub mod endpoint;
mod error;
pub mod fuzzing;
mod headers;
mod message;
mod method;
mod name;
mod nameaddr;
mod params;
pub mod registrar;
pub mod registration;
mod scan;
pub mod sdp;
mod stream;
pub mod subscription;
pub mod transaction;
#[cfg(feature = "tokio")]
pub mod transports;
mod uri;
mod values;
mod via;

pub use bytestr::ByteStr;
pub use error::{ErrorKind, ParseError, Part, ValueError};
pub use headers::{HeaderRef, HeaderValue, Headers};
pub use message::{MAX_HEADERS, Message, StartLine};
pub use method::{Method, StatusCode};
pub use name::HeaderName;
pub use nameaddr::{Contact, DisplayName, NameAddr};
pub use params::{Param, Params};
pub use stream::{Frame, StreamDecoder, StreamLimits};
pub use uri::{Host, SipUri, TelUri, Uri, unescape};
pub use values::{
    Auth, CSeq, CallId, MAX_CSEQ, MediaType, Parameterised, Privacy, Replaces, SipDate, Timestamp,
    Token,
};
pub use via::{MAGIC_COOKIE, Transport, Via};

/// This crate's version, for banners and `User-Agent` headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
