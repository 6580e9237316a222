//! Choosing the response a forked INVITE ends with (RFC 3261 §16.7 steps 5 and 6).
//!
//! ```
//! use pbxkit_sip::b2bua::Best;
//! use pbxkit_sip::StatusCode;
//!
//! // Three phones: one timed out, one was busy, one failed.
//! let mut best = Best::new();
//! best.add(StatusCode::REQUEST_TIMEOUT, None);
//! best.add(StatusCode::BUSY_HERE, None);
//! best.add(StatusCode::SERVICE_UNAVAILABLE, None);
//! // Busy beats a timeout and a 5xx: the caller hears busy.
//! assert_eq!(best.status(), Some(StatusCode::BUSY_HERE));
//! assert!(!best.is_global_failure());
//!
//! // A 503 alone is given as 500: it speaks of that server, not of the callee.
//! let mut lone = Best::new();
//! lone.add(StatusCode::SERVICE_UNAVAILABLE, None);
//! assert_eq!(lone.status(), Some(StatusCode::SERVER_INTERNAL_ERROR));
//!
//! // A 6xx ends the search at once.
//! best.add(StatusCode::DECLINE, None);
//! assert!(best.is_global_failure());
//! assert_eq!(best.status(), Some(StatusCode::DECLINE));
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::StatusCode;
use crate::name::HeaderName;

/// The best final response among a set of branch failures.
///
/// A 6xx wins; else the lowest class (3xx, then 4xx, then 5xx). Within 4xx the
/// responses that change how the request may be retried come first (401, 407, 415,
/// 420, 484), then 486 (busy is what forwarding rules and callers care about), then
/// other 4xx, then 408 and last 487. Ties go to the earliest. The challenges of every
/// 401/407 are combined into the chosen one, and a chosen 503 becomes 500 (it speaks
/// of this server, not of the callee).
#[derive(Debug, Clone, Default)]
pub struct Best {
    chosen: Option<(StatusCode, Option<Message>)>,
    challenges: Vec<(HeaderName, ByteStr)>,
}

fn rank(s: StatusCode) -> (u8, u8, u16) {
    let code = s.as_u16();
    match code / 100 {
        6 => (0, 0, code),
        3 => (1, 0, code),
        4 => {
            let within = match code {
                401 | 407 | 415 | 420 | 484 => 0,
                486 => 1,
                408 => 3,
                487 => 4,
                _ => 2,
            };
            (2, within, code)
        }
        5 => (3, 0, code),
        _ => (4, 0, code),
    }
}

impl Best {
    /// Nothing received yet.
    pub fn new() -> Best {
        Best::default()
    }

    /// Records a branch's failure: its final status, and the response when one came
    /// (`None` for a timeout).
    pub fn add(&mut self, status: StatusCode, response: Option<&Message>) {
        if matches!(status.as_u16(), 401 | 407)
            && let Some(r) = response
        {
            for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                for h in r.headers().all(&name) {
                    let value = h.to_bytestr();
                    if !self
                        .challenges
                        .iter()
                        .any(|(n, v)| *n == name && *v == value)
                    {
                        self.challenges.push((name.clone(), value));
                    }
                }
            }
        }
        let better = self
            .chosen
            .as_ref()
            .is_none_or(|(best, _)| rank(status) < rank(*best));
        if better {
            self.chosen = Some((status, response.cloned()));
        }
    }

    /// Whether a 6xx was received: no other branch can change the outcome.
    pub fn is_global_failure(&self) -> bool {
        self.chosen.as_ref().is_some_and(|(s, _)| s.as_u16() >= 600)
    }

    /// The status to give the caller, `None` when nothing was recorded.
    pub fn status(&self) -> Option<StatusCode> {
        let (s, _) = self.chosen.as_ref()?;
        Some(if *s == StatusCode::SERVICE_UNAVAILABLE {
            StatusCode::SERVER_INTERNAL_ERROR
        } else {
            *s
        })
    }

    /// The chosen response, with the combined challenges and 503 turned into 500.
    pub fn response(&self) -> Option<Message> {
        let (status, response) = self.chosen.as_ref()?;
        let mut response = response.clone()?;
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            response.start = crate::message::StartLine::Response {
                code: StatusCode::SERVER_INTERNAL_ERROR,
                reason: ByteStr::from_static("Server Internal Error"),
            };
        }
        if matches!(status.as_u16(), 401 | 407) {
            for (name, value) in &self.challenges {
                let present = response
                    .headers()
                    .all(name)
                    .any(|h| h.value == value.as_str());
                if !present {
                    response.headers_mut().push(name.clone(), value.clone());
                }
            }
        }
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    use super::*;

    fn code(c: u16) -> StatusCode {
        StatusCode::new(c).unwrap()
    }

    fn response(c: u16, extra: &str) -> Message {
        Message::parse(format!(
            "SIP/2.0 {c} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        ))
        .unwrap()
    }

    fn best_of(codes: &[u16]) -> u16 {
        let mut b = Best::new();
        for c in codes {
            b.add(code(*c), Some(&response(*c, "")));
        }
        b.status().unwrap().as_u16()
    }

    #[test]
    fn classes_and_preferences() {
        assert_eq!(best_of(&[486, 404, 503]), 486);
        assert_eq!(best_of(&[503, 404]), 404);
        assert_eq!(best_of(&[503]), 500, "503 speaks of us: 500");
        assert_eq!(best_of(&[503, 502]), 502);
        assert_eq!(best_of(&[502, 503]), 502);
        assert_eq!(best_of(&[487, 408, 404]), 404);
        assert_eq!(best_of(&[487, 408]), 408);
        assert_eq!(best_of(&[404, 603, 486]), 603);
        assert_eq!(best_of(&[486, 302]), 302);
        assert_eq!(best_of(&[486, 407, 480]), 407);
        assert_eq!(Best::new().status(), None);
        let mut b = Best::new();
        b.add(StatusCode::REQUEST_TIMEOUT, None);
        assert_eq!(b.status(), Some(StatusCode::REQUEST_TIMEOUT));
        assert!(b.response().is_none());
        assert!(!b.is_global_failure());
        b.add(code(600), None);
        assert!(b.is_global_failure());
    }

    #[test]
    fn challenges_are_combined_and_503_becomes_500() {
        let mut b = Best::new();
        b.add(
            code(401),
            Some(&response(
                401,
                "WWW-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\n",
            )),
        );
        b.add(
            code(407),
            Some(&response(
                407,
                "Proxy-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\n",
            )),
        );
        let r = b.response().unwrap();
        assert_eq!(r.status(), Some(code(401)));
        assert_eq!(r.headers().all(&HeaderName::WwwAuthenticate).count(), 1);
        assert_eq!(r.headers().all(&HeaderName::ProxyAuthenticate).count(), 1);
        let mut b = Best::new();
        b.add(code(503), Some(&response(503, "")));
        assert_eq!(b.response().unwrap().status(), Some(code(500)));
    }
}
