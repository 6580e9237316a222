//! SDP anchoring: what a B2BUA that relays media does to the SDP it passes from one
//! leg to the other.
//!
//! Each side of a call sees us as its media peer: our address in `c=`, the relay's
//! ports in `m=`, and one origin (`o=`) of ours whose version moves only when what we
//! send that side changes (RFC 3264 §8), however often the other side re-offers or
//! changes its own origin. A refresh that changes nothing keeps its version, which is
//! what lets [`Established`](super::Established) answer it without asking the owner.
//!
//! ```
//! use pbxkit_sip::b2bua::Anchor;
//! use pbxkit_sip::sdp::Session;
//!
//! let from_alice = Session::parse(
//!     "v=0\r\no=alice 99 5 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//!      m=audio 4000 RTP/AVP 0\r\n",
//! )?;
//! // What Bob is offered: our address, the relay's port for Bob's side.
//! let mut towards_bob = Anchor::new(7, "203.0.113.5".parse()?);
//! let offer = towards_bob.rewrite(&from_alice, &[Some(20_000)]);
//! assert_eq!(offer.media[0].port, 20_000);
//! assert_eq!(offer.connection.as_ref().map(|c| c.address.as_str()), Some("203.0.113.5"));
//! assert_eq!((offer.origin.session_id.as_str(), offer.origin.session_version), ("7", 1));
//! // The same again (a session refresh): the same version.
//! assert_eq!(towards_bob.rewrite(&from_alice, &[Some(20_000)]).origin.session_version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::sdp::{Connection, Direction, Origin, Session};
use std::net::IpAddr;

/// Our origin and media address towards one side of a call.
#[derive(Debug, Clone)]
pub struct Anchor {
    session_id: u64,
    address: IpAddr,
    version: u64,
    last: Option<Session>,
}

impl Anchor {
    /// An anchor with our `session_id` (random, from the owner) and media `address`.
    pub fn new(session_id: u64, address: IpAddr) -> Anchor {
        Anchor {
            session_id,
            address,
            version: 0,
            last: None,
        }
    }

    /// The last SDP we sent this side.
    pub fn last(&self) -> Option<&Session> {
        self.last.as_ref()
    }

    /// The other side's `sdp` as this side must see it: our address in a session-level
    /// `c=` (media-level ones and `a=rtcp` removed, RTCP on the port above), the `m=`
    /// ports from `ports` by position (a stream without a port, or `None`, is refused
    /// with port 0), and our origin, its version incremented only when the result
    /// differs from the last one sent. Directions and codecs pass through unchanged.
    pub fn rewrite(&mut self, sdp: &Session, ports: &[Option<u16>]) -> Session {
        let addr_type = ByteStr::from_static(if self.address.is_ipv4() { "IP4" } else { "IP6" });
        let address = ByteStr::from(self.address.to_string());
        let mut out = sdp.clone();
        out.connection = Some(Connection {
            addr_type: addr_type.clone(),
            address: address.clone(),
        });
        for (i, m) in out.media.iter_mut().enumerate() {
            m.connection = None;
            m.attributes.retain(|a| a.name.as_str() != "rtcp");
            m.port = match ports.get(i).copied().flatten() {
                Some(p) if m.port != 0 => p,
                _ => 0,
            };
            if m.port == 0 {
                m.port_count = None;
            }
        }
        let origin = |version| Origin {
            username: ByteStr::from_static("pbxkit"),
            session_id: ByteStr::from(self.session_id.to_string()),
            session_version: version,
            addr_type: addr_type.clone(),
            address: address.clone(),
        };
        out.origin = origin(self.version);
        if self.last.as_ref() != Some(&out) {
            self.version += 1;
            out.origin = origin(self.version);
        }
        self.last = Some(out.clone());
        out
    }
}

/// Sets every stream's direction (`a=sendonly` to put the receiver on hold, `a=sendrecv`
/// to take it off), replacing the session-level one.
pub fn set_direction(sdp: &mut Session, direction: Direction) {
    sdp.attributes.retain(|a| {
        !matches!(
            a.name.as_str(),
            "sendrecv" | "sendonly" | "recvonly" | "inactive"
        )
    });
    for m in &mut sdp.media {
        if m.port != 0 {
            m.set_direction(direction);
        }
    }
}

/// Whether `sdp` puts its receiver on hold: every active stream is `sendonly` or
/// `inactive`, or its address is `0.0.0.0` (the RFC 2543 way).
pub fn is_hold(sdp: &Session) -> bool {
    let session = sdp.direction();
    let mut active = sdp.media.iter().filter(|m| m.port != 0).peekable();
    if active.peek().is_none() {
        return false;
    }
    active.all(|m| {
        let held = matches!(
            m.direction(session),
            Direction::SendOnly | Direction::Inactive
        );
        held || sdp.media_address(m) == Some("0.0.0.0")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    use super::*;

    const ALICE: &str = "v=0\r\no=alice 99 5 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 101\r\nc=IN IP4 192.0.2.1\r\na=rtcp:4001\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=x-unknown:kept\r\n\
        m=video 4002 RTP/AVP 96\r\nm=audio 0 RTP/AVP 8\r\n";

    fn alice() -> Session {
        Session::parse(ALICE).unwrap()
    }

    #[test]
    fn addresses_ports_and_origin_become_ours() {
        let mut a = Anchor::new(42, "203.0.113.5".parse().unwrap());
        let out = a.rewrite(&alice(), &[Some(20_000), None, Some(20_002)]);
        let text = out.to_text();
        assert!(
            text.contains("o=pbxkit 42 1 IN IP4 203.0.113.5\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP4 203.0.113.5\r\n"));
        assert!(
            !text.contains("192.0.2.1"),
            "nothing of Alice's addresses: {text}"
        );
        assert!(!text.contains("a=rtcp:"));
        assert!(
            text.contains("a=x-unknown:kept"),
            "other lines pass through"
        );
        assert!(text.contains("a=rtpmap:101 telephone-event/8000"));
        let ports: Vec<u16> = out.media.iter().map(|m| m.port).collect();
        // No port for video: refused; a stream Alice refused stays refused.
        assert_eq!(ports, [20_000, 0, 0]);
        assert_eq!(Session::parse(&text).unwrap(), out);
        assert_eq!(a.last(), Some(&out));
    }

    #[test]
    fn the_version_moves_only_when_what_we_send_changes() {
        let mut a = Anchor::new(42, "2001:db8::5".parse().unwrap());
        let ports = [Some(20_000)];
        let first = a.rewrite(&alice(), &ports);
        assert_eq!(first.origin.addr_type.as_str(), "IP6");
        assert_eq!(first.origin.session_version, 1);
        // Alice refreshes with a new version of hers but the same media.
        let mut refreshed = alice();
        refreshed.origin.session_version = 6;
        assert_eq!(a.rewrite(&refreshed, &ports).origin.session_version, 1);
        // Alice holds: the media changes, so does our version, by one.
        let mut hold = alice();
        set_direction(&mut hold, Direction::SendOnly);
        let held = a.rewrite(&hold, &ports);
        assert_eq!(held.origin.session_version, 2);
        assert!(is_hold(&held));
        // A new relay port changes it too.
        assert_eq!(a.rewrite(&hold, &[Some(20_010)]).origin.session_version, 3);
        assert_eq!(
            a.rewrite(&hold, &[Some(20_010)]).origin.session_id.as_str(),
            "42"
        );
    }

    #[test]
    fn hold_is_sendonly_inactive_or_the_null_address() {
        assert!(!is_hold(&alice()));
        let mut s = alice();
        set_direction(&mut s, Direction::Inactive);
        assert!(is_hold(&s));
        set_direction(&mut s, Direction::SendRecv);
        assert!(!is_hold(&s));
        let session_level = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
        let mut s = Session::parse(session_level).unwrap();
        assert!(is_hold(&s));
        set_direction(&mut s, Direction::SendRecv);
        assert!(!is_hold(&s), "the session-level attribute is replaced");
        let rfc2543 = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(is_hold(&Session::parse(rfc2543).unwrap()));
        let refused = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        assert!(!is_hold(&Session::parse(refused).unwrap()));
    }
}
