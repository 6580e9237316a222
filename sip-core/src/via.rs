//! The Via header (RFC 3261 §20.42, RFC 3581 rport).
//!
//! ```
//! use pbxkit_sip::{ByteStr, HeaderValue, Host, Transport, Via};
//!
//! let text = "SIP/2.0/TCP pc33.atlanta.example.com:5061;branch=z9hG4bK776a;rport=50022;received=198.51.100.3";
//! let via = Via::parse_value(&ByteStr::from(text))?;
//! assert_eq!((&via.transport, via.port), (&Transport::Tcp, Some(5061)));
//! assert!(via.transport.is_reliable());
//! assert!(via.has_rfc3261_branch());
//! // Where the request really came from (RFC 3581): answer there.
//! assert_eq!(via.received(), Some("198.51.100.3".parse()?));
//! assert_eq!(via.rport(), Some(Some(50022)));
//!
//! // Ours, asking the next hop to fill in rport.
//! let mut ours = Via::new(Transport::Udp, Host::Ip("192.0.2.1".parse()?), Some(5060), "z9hG4bKx1");
//! ours.params.set("rport", None);
//! assert_eq!(ours.to_string(), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1;rport");
//! assert_eq!(ours.rport(), Some(None));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::{Build, ByteStr};
use crate::error::ValueError;
use crate::headers::HeaderValue;
use crate::params::{Params, parse_header_params};
use crate::scan::{Cursor, is_token, sub};
use crate::uri::Host;
use std::fmt;
use std::net::IpAddr;

/// The transport of a Via (or a `transport` URI parameter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Any other token, as received.
    Other(ByteStr),
}

impl Transport {
    /// Recognises a transport name, case-insensitively.
    pub fn parse(s: &str) -> Transport {
        Transport::parse_known(s).unwrap_or_else(|other| Transport::Other(ByteStr::from(other)))
    }

    /// A known transport, or the text when it is another one.
    fn parse_known(s: &str) -> Result<Transport, &str> {
        let known = match s.len() {
            2 if s.eq_ignore_ascii_case("WS") => Some(Transport::Ws),
            3 if s.eq_ignore_ascii_case("UDP") => Some(Transport::Udp),
            3 if s.eq_ignore_ascii_case("TCP") => Some(Transport::Tcp),
            3 if s.eq_ignore_ascii_case("TLS") => Some(Transport::Tls),
            3 if s.eq_ignore_ascii_case("WSS") => Some(Transport::Wss),
            4 if s.eq_ignore_ascii_case("SCTP") => Some(Transport::Sctp),
            _ => None,
        };
        known.ok_or(s)
    }

    /// Upper-case name as written in a Via.
    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    /// Whether the transport delivers reliably (no retransmissions needed).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport.
    pub transport: Transport,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl, others).
    pub params: Params,
}

impl Via {
    /// A Via for a request we send.
    pub fn new(transport: Transport, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(ByteStr::from(branch)));
        Via {
            transport,
            host,
            port,
            params,
        }
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch starts with the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter (brackets around IPv6 accepted, RFC 5118 §4.5).
    pub fn received(&self) -> Option<IpAddr> {
        let v = self.params.get("received").flatten()?;
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        v.parse().ok()
    }

    /// `rport`: `None` when absent, `Some(None)` when requested, `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

impl HeaderValue for Via {
    fn parse_value(value: &ByteStr) -> Result<Via, ValueError> {
        Via::parse_in(value, Build::Into(value))
    }
}

impl crate::headers::CheckValue for Via {
    fn check_value(value: &str) -> Result<(), ValueError> {
        Via::parse_in(value, Build::Check).map(drop)
    }
}

impl Via {
    // Inlined into the checking and the building caller: each gets a copy specialised
    // for its `build` (the check's builds nothing).
    #[inline(always)]
    fn parse_in(value: &str, build: Build<'_>) -> Result<Via, ValueError> {
        let mut c = Cursor::new(value);
        // Nearly every Via starts `SIP/2.0/UDP ` (or TCP, TLS) without inner white
        // space: take that in one comparison. The general path below gives the same
        // result for it.
        let transport = match value.as_bytes().get(..12) {
            Some([b'S', b'I', b'P', b'/', b'2', b'.', b'0', b'/', t @ .., b' ']) => match t {
                b"UDP" => Some(Transport::Udp),
                b"TCP" => Some(Transport::Tcp),
                b"TLS" => Some(Transport::Tls),
                _ => None,
            },
            _ => None,
        };
        let transport = match transport {
            Some(t) => {
                c.set_pos(11);
                t
            }
            None => Via::sent_protocol(&mut c, build)?,
        };
        if !c.skip_lws() {
            return Err(c.error("sent-by"));
        }
        let at = c.pos();
        let host_text = if c.peek() == Some(b'[') {
            let t = c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(ValueError::new("IPv6 reference", at));
            }
            sub(value, at, at + t.len() + 1)
        } else {
            c.take_while(|b| is_token(b) && b != b'!' && b != b'%')
        };
        let host = Host::parse_str(host_text, build).ok_or(ValueError::new("sent-by host", at))?;
        let port = if c.eat_sep(b':') {
            let at = c.pos();
            let n = c.number(u64::from(u16::MAX), "sent-by port")?;
            Some(u16::try_from(n).map_err(|_| ValueError::new("sent-by port", at))?)
        } else {
            None
        };
        let mut params = Params::new();
        parse_header_params(&mut c, build, &mut params)?;
        c.end("via-params")?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// Generic path for `sent-protocol`: `SIP / 2.0 / transport`, LWS allowed around
    /// the slashes.
    fn sent_protocol(c: &mut Cursor<'_>, build: Build<'_>) -> Result<Transport, ValueError> {
        let name = c.token("sent-protocol")?;
        if !name.eq_ignore_ascii_case("SIP") || !c.eat_sep(b'/') {
            return Err(ValueError::new("sent-protocol", 0));
        }
        let at = c.pos();
        let version = c.token("sent-protocol version")?;
        if version != "2.0" {
            return Err(ValueError::new("sent-protocol version", at));
        }
        if !c.eat_sep(b'/') {
            return Err(c.error("sent-protocol"));
        }
        Ok(match Transport::parse_known(c.token("transport")?) {
            Ok(known) => known,
            Err(other) => Transport::Other(build.slice(other)),
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &str) -> Result<Via, ValueError> {
        Via::parse_value(&ByteStr::from(s))
    }

    #[test]
    fn parses_branch_received_rport() {
        let v = via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.9")
            .unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.9"
        );
    }

    #[test]
    fn white_space_everywhere() {
        // RFC 4475 §3.1.1.1.
        let v = via("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8")
            .unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = via("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.host, Host::Ip("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let v =
            via("SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        let v =
            via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3").unwrap();
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/7.0/UDP c.example.com",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host extra",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP [::1",
        ] {
            assert!(via(bad).is_err(), "{bad}");
        }
    }
}
