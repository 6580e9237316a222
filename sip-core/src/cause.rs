//! Hangup causes: the ITU-T Q.850 cause values of the telephone network mapped to SIP
//! status codes and back (RFC 3398 §7.2.4.1 and §8.2.6.1), and the Reason header
//! (RFC 3326) that carries either kind of cause on a BYE, a CANCEL or a response.
//!
//! ```
//! use pbxkit_sip::cause::{Reason, cause_for_status, status_for_cause};
//! use pbxkit_sip::StatusCode;
//!
//! // A trunk cleared with "user busy": the caller gets 486, and back again.
//! assert_eq!(status_for_cause(17), StatusCode::BUSY_HERE);
//! assert_eq!(cause_for_status(StatusCode::BUSY_HERE), 17);
//!
//! // Losing branches of a forked call are cancelled "elsewhere" (no missed call).
//! let r = Reason::answered_elsewhere();
//! assert_eq!(r.to_string(), "SIP;cause=200;text=\"Call completed elsewhere\"");
//! let parsed: Reason = "Q.850 ; cause=16 ; text=\"Terminated\"".parse()?;
//! assert_eq!((parsed.protocol, parsed.cause), (pbxkit_sip::cause::Protocol::Q850, 16));
//! # Ok::<(), pbxkit_sip::ParseError>(())
//! ```

use crate::bytestr::ByteStr;
use crate::error::{ErrorKind, ParseError, Part};
use crate::headers::HeaderValue;
use crate::method::StatusCode;
use crate::values::Parameterised;
use std::fmt;

/// Normal call clearing: how an answered call ends.
pub const NORMAL_CLEARING: u8 = 16;

/// The SIP status for a Q.850 cause (RFC 3398 §7.2.4.1); causes the table does not
/// list get the status of their class.
pub fn status_for_cause(cause: u8) -> StatusCode {
    let code = match cause {
        1..=3 | 26 => 404,
        17 => 486,
        18 | 102 => 408,
        19 | 20 | 31 => 480,
        21 | 55 | 57 | 87 => 403,
        22 | 23 => 410,
        27 => 502,
        28 => 484,
        29 => 510,
        34 | 38 | 41 | 42 | 47 | 58 | 88 => 503,
        65 | 70 => 488,
        79 => 501,
        // Classes (Q.850 §2.2.5): normal events, resource unavailable, service or
        // option not available, the rest.
        0..=31 => 480,
        32..=47 => 503,
        48..=79 => 488,
        _ => 500,
    };
    StatusCode::new(code).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR)
}

/// The Q.850 cause for a SIP final status (RFC 3398 §8.2.6.1); 2xx is normal clearing
/// and statuses the table does not list are "interworking, unspecified" (127).
pub fn cause_for_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        200..=299 => NORMAL_CLEARING,
        401 | 402 | 403 | 407 | 603 => 21,
        404 | 485 | 604 => 1,
        405 => 63,
        406 | 415 | 501 => 79,
        408 | 504 => 102,
        410 => 22,
        480 => 18,
        482 | 483 => 25,
        484 => 28,
        486 | 600 => 17,
        502 => 38,
        400 | 481 | 500 | 503 => 41,
        606 => 58,
        _ => 127,
    }
}

/// Whose cause a Reason header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A SIP status code (`SIP;cause=200`).
    Sip,
    /// A Q.850 cause value (`Q.850;cause=16`).
    Q850,
}

/// A Reason header value (RFC 3326) with a cause of a protocol we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// SIP or Q.850.
    pub protocol: Protocol,
    /// The status code or cause value.
    pub cause: u16,
    /// The `text` parameter, unquoted.
    pub text: Option<String>,
}

impl Reason {
    /// `SIP;cause=200;text="Call completed elsewhere"`: the CANCEL of the branches that
    /// lost a forked call, which phones then do not list as missed (RFC 3326 §2).
    pub fn answered_elsewhere() -> Reason {
        Reason {
            protocol: Protocol::Sip,
            cause: 200,
            text: Some("Call completed elsewhere".into()),
        }
    }

    /// A Q.850 cause with its text.
    pub fn q850(cause: u8, text: &str) -> Reason {
        Reason {
            protocol: Protocol::Q850,
            cause: u16::from(cause),
            text: Some(text.into()),
        }
    }

    /// The Q.850 cause this reason stands for (a SIP status is mapped).
    pub fn q850_cause(&self) -> Option<u8> {
        match self.protocol {
            Protocol::Q850 => u8::try_from(self.cause).ok().filter(|c| *c <= 127),
            Protocol::Sip => Some(cause_for_status(StatusCode::new(self.cause)?)),
        }
    }
}

impl HeaderValue for Reason {
    fn parse_value(value: &ByteStr) -> Result<Reason, crate::error::ValueError> {
        let p = Parameterised::parse_value(value)?;
        let protocol = if p.value.eq_ignore_ascii_case("SIP") {
            Protocol::Sip
        } else if p.value.eq_ignore_ascii_case("Q.850") {
            Protocol::Q850
        } else {
            return Err(crate::error::ValueError::new("Reason protocol", 0));
        };
        let cause = p
            .param("cause")
            .and_then(|c| c.trim().parse().ok())
            .ok_or(crate::error::ValueError::new("Reason cause", 0))?;
        Ok(Reason {
            protocol,
            cause,
            text: p.param("text"),
        })
    }
}

impl std::str::FromStr for Reason {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Reason, ParseError> {
        Reason::parse_value(&ByteStr::from(s.trim().to_owned())).map_err(|e| {
            e.into_parse(
                ErrorKind::InvalidHeader,
                Part::Header(crate::HeaderName::Reason),
                0,
            )
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Sip => "SIP",
            Protocol::Q850 => "Q.850",
        };
        write!(f, "{protocol};cause={}", self.cause)?;
        if let Some(text) = &self.text {
            // A quoted string: quotes and backslashes escaped, control characters out.
            let text: String = text
                .chars()
                .filter(|c| !c.is_control())
                .flat_map(|c| match c {
                    '"' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            write!(f, ";text=\"{text}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_3398_pairs_map_both_ways() {
        for (cause, status) in [(1, 404), (17, 486), (28, 484), (102, 408)] {
            assert_eq!(status_for_cause(cause).as_u16(), status);
            assert_eq!(cause_for_status(StatusCode::new(status).unwrap()), cause);
        }
        // Class defaults, and 16 (a BYE, not a response) among the normal events.
        assert_eq!(status_for_cause(16).as_u16(), 480);
        assert_eq!(status_for_cause(44).as_u16(), 503);
        assert_eq!(status_for_cause(66).as_u16(), 488);
        assert_eq!(status_for_cause(127).as_u16(), 500);
        assert_eq!(cause_for_status(StatusCode::OK), NORMAL_CLEARING);
        assert_eq!(cause_for_status(StatusCode::new(487).unwrap()), 127);
    }

    #[test]
    fn reasons_parse_print_and_refuse_what_they_cannot_read() {
        let r: Reason = "SIP;cause=486;text=\"Busy \\\"here\\\"\"".parse().unwrap();
        assert_eq!((r.protocol, r.cause), (Protocol::Sip, 486));
        assert_eq!(r.text.as_deref(), Some("Busy \"here\""));
        assert_eq!(r.q850_cause(), Some(17));
        assert_eq!(r.to_string().parse::<Reason>().unwrap(), r);
        assert_eq!(
            Reason::q850(16, "Normal").to_string(),
            "Q.850;cause=16;text=\"Normal\""
        );
        assert_eq!(
            "Q.850;cause=300".parse::<Reason>().unwrap().q850_cause(),
            None
        );
        for bad in [
            "",
            "X-PROTO;cause=1",
            "SIP",
            "SIP;cause=x",
            "SIP;cause=99999999",
        ] {
            assert!(bad.parse::<Reason>().is_err(), "{bad}");
        }
    }
}
