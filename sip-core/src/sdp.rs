//! SDP (RFC 8866, formerly 4566): parse and serialise sessions and media, with the
//! lines we don't model kept as received; and the RFC 3264 offer/answer helper.
//!
//! Answering an offer with [`answer`]: our preferred codec comes first, codecs we
//! don't take are dropped, and telephone-event keeps the offer's payload type.
//!
//! ```
//! use pbxkit_sip::sdp::{self, AnswerPolicy, Codec, Connection, Direction, Origin, Session};
//!
//! let offer = Session::parse(
//!     "v=0\r\no=alice 2890844526 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
//!      t=0 0\r\nm=audio 40000 RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\n\
//!      a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
//! )?;
//! assert_eq!(offer.media[0].port, 40000);
//! let policy = AnswerPolicy {
//!     preferred: vec![Codec::PCMA],
//!     accepted: vec![Codec::PCMU],
//!     telephone_event: true,
//!     direction: Direction::SendRecv,
//!     rtcp_mux: false,
//!     origin: Origin {
//!         username: "-".into(),
//!         session_id: "4711".into(),
//!         session_version: 1,
//!         addr_type: "IP4".into(),
//!         address: "203.0.113.5".into(),
//!     },
//!     connection: Connection { addr_type: "IP4".into(), address: "203.0.113.5".into() },
//! };
//! // One port per m= line of the offer (None would reject it).
//! let answer = sdp::answer(&offer, &policy, &[Some(40002)]);
//! let audio = &answer.media[0];
//! assert_eq!(audio.port, 40002);
//! // PCMA (ours first), then PCMU; G.722 dropped; telephone-event at 101.
//! assert_eq!(audio.payload_types().collect::<Vec<_>>(), [8, 0, 101]);
//! let chosen = audio.rtpmap(8).ok_or("no rtpmap for 8")?;
//! assert_eq!(chosen.encoding.as_str(), "PCMA");
//! // What goes back in the 200 OK parses again.
//! assert_eq!(Session::parse(&answer.to_text())?, answer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::error::{ErrorKind, ParseError, Part};
use std::fmt;

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (a single space or `-` when there is nothing to say).
    pub name: ByteStr,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `a=` lines.
    pub attributes: Vec<Attribute>,
    /// Other session-level lines (`i= u= e= p= b= t= r= z= k=` and unknown letters),
    /// kept as received and written back in the RFC's order.
    pub other: Vec<Line>,
    /// `m=` sections.
    pub media: Vec<Media>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: ByteStr,
    /// Session id (digits, kept as text: some peers exceed 64 bits).
    pub session_id: ByteStr,
    /// Session version, incremented on each change.
    pub session_version: u64,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: ByteStr,
    /// The originator's address.
    pub address: ByteStr,
}

/// `c=IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: ByteStr,
    /// The address (may carry `/ttl` for multicast, kept as is).
    pub address: ByteStr,
}

/// An `a=` line: `name` or `name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: ByteStr,
    /// Value after the colon.
    pub value: Option<ByteStr>,
}

/// A line we keep without modelling it: its type letter and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The type letter (`b`, `t`, `i`...).
    pub kind: u8,
    /// Everything after `=`.
    pub value: ByteStr,
}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, `application`...
    pub kind: ByteStr,
    /// Port; 0 rejects or disables the stream.
    pub port: u16,
    /// Number of ports (`m=audio 49170/2 ...`), when given.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP` or `RTP/SAVP`.
    pub proto: ByteStr,
    /// Formats: payload type numbers for RTP.
    pub formats: Vec<ByteStr>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// Media-level `a=` lines.
    pub attributes: Vec<Attribute>,
    /// Other media-level lines (`i= b= k=`, unknown letters), kept as received.
    pub other: Vec<Line>,
}

/// Stream direction (RFC 3264 §5.1), used for hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Send and receive (the default).
    SendRecv,
    /// Only send (we put the other side on hold).
    SendOnly,
    /// Only receive.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// What an answerer who would like `ours` answers to an offer of `self`.
    pub fn answer(self, ours: Direction) -> Direction {
        let (offer_send, offer_recv) = self.flags();
        let (our_send, our_recv) = ours.flags();
        // We may send only if the offerer receives, and receive only if it sends.
        Direction::from_flags(our_send && offer_recv, our_recv && offer_send)
    }

    fn flags(self) -> (bool, bool) {
        match self {
            Direction::SendRecv => (true, true),
            Direction::SendOnly => (true, false),
            Direction::RecvOnly => (false, true),
            Direction::Inactive => (false, false),
        }
    }

    fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

/// An `a=rtpmap:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `telephone-event`, `opus`).
    pub encoding: ByteStr,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u8>,
}

/// An `a=crypto:` line (RFC 4568), kept structured enough for SRTP set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag.
    pub tag: u32,
    /// Suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: ByteStr,
    /// Key parameters (`inline:...`).
    pub key_params: ByteStr,
}

fn attribute_value<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name.as_str() == name)
        .and_then(|a| a.value.as_deref())
}

impl Media {
    /// The value of the first attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute_value(&self.attributes, name)
    }

    /// Whether an attribute is present (with or without value).
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name.as_str() == name)
    }

    /// The `a=rtpmap` entries that parse.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name.as_str() == "rtpmap")
            .filter_map(|a| parse_rtpmap(a.value.as_ref()?))
    }

    /// The rtpmap of a payload type, or the RFC 3551 static mapping (0 PCMU, 8 PCMA,
    /// 9 G722, 18 G729, 3 GSM, 4 G723, 13 CN) when the offer has none.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .find(|m| m.payload_type == payload_type)
            .or_else(|| static_rtpmap(payload_type))
    }

    /// The `a=fmtp` parameters of a payload type.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name.as_str() == "fmtp")
            .find_map(|a| {
                let v = a.value.as_deref()?;
                let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                (pt.parse::<u8>().ok()? == payload_type).then_some(params.trim())
            })
    }

    /// `a=ptime`, in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")?.trim().parse().ok()
    }

    /// `a=maxptime`, in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute("maxptime")?.trim().parse().ok()
    }

    /// The direction: media-level attribute, else `session` (the session-level one).
    pub fn direction(&self, session: Direction) -> Direction {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
            .unwrap_or(session)
    }

    /// Sets the direction attribute (replacing any).
    pub fn set_direction(&mut self, d: Direction) {
        self.attributes
            .retain(|a| Direction::parse(&a.name).is_none());
        self.attributes.push(Attribute {
            name: ByteStr::from_static(d.as_str()),
            value: None,
        });
    }

    /// `a=rtcp:port [IN IP4 address]` (RFC 3605): the port and the address if given.
    pub fn rtcp(&self) -> Option<(u16, Option<&str>)> {
        let v = self.attribute("rtcp")?;
        let mut parts = v.split_whitespace();
        let port = parts.next()?.parse().ok()?;
        Some((port, parts.nth(2)))
    }

    /// Whether `a=rtcp-mux` is present (RFC 5761).
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// `a=crypto` lines that parse.
    pub fn cryptos(&self) -> impl Iterator<Item = Crypto> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name.as_str() == "crypto")
            .filter_map(|a| {
                let v = a.value.as_ref()?;
                let mut parts = v.split_whitespace();
                let tag = parts.next()?.parse().ok()?;
                let suite = v.slice_ref(parts.next()?);
                let key_params = v.slice_ref(parts.next()?);
                Some(Crypto {
                    tag,
                    suite,
                    key_params,
                })
            })
    }

    /// Payload type numbers (formats that are numbers below 128).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
    }
}

fn parse_rtpmap(v: &ByteStr) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = v.slice_ref(parts.next()?);
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type: pt.parse().ok().filter(|pt| *pt < 128)?,
        encoding,
        clock_rate,
        channels,
    })
}

/// RFC 3551 static audio payload types.
pub fn static_rtpmap(payload_type: u8) -> Option<RtpMap> {
    let (name, rate) = match payload_type {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        payload_type,
        encoding: ByteStr::from_static(name),
        clock_rate: rate,
        channels: None,
    })
}

impl Session {
    /// The value of the first session-level attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute_value(&self.attributes, name)
    }

    /// Session-level direction (default sendrecv).
    pub fn direction(&self) -> Direction {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
            .unwrap_or(Direction::SendRecv)
    }

    /// The connection address of a media section (its own `c=`, else the session's).
    pub fn media_address<'a>(&'a self, media: &'a Media) -> Option<&'a str> {
        media
            .connection
            .as_ref()
            .or(self.connection.as_ref())
            .map(|c| c.address.as_str())
    }

    /// Parses a session description. Lines may end with CRLF or LF.
    pub fn parse(text: &str) -> Result<Session, ParseError> {
        let base = ByteStr::from(text);
        Session::parse_bytestr(&base)
    }

    /// Parses SDP from a message body (bytes that must be UTF-8).
    pub fn parse_body(body: &[u8]) -> Result<Session, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            ParseError::new(ErrorKind::Utf8, Part::Sdp, "UTF-8 SDP", e.valid_up_to())
        })?;
        Session::parse(text)
    }

    fn parse_bytestr(base: &ByteStr) -> Result<Session, ParseError> {
        let text = base.as_str();
        let bad =
            |element, at: usize| ParseError::new(ErrorKind::InvalidHeader, Part::Sdp, element, at);
        let mut offset = 0;
        let mut lines = Vec::new();
        for raw in text.split_inclusive('\n') {
            // One line terminator: CRLF or a bare LF.
            let line = raw.strip_suffix('\n').unwrap_or(raw);
            let line = line.strip_suffix('\r').unwrap_or(line);
            let at = offset;
            offset += raw.len();
            if line.is_empty() {
                continue;
            }
            // RFC 8866 §9: text may hold any byte but NUL, CR and LF.
            if let Some(i) = line.bytes().position(|b| b == b'\r' || b == 0) {
                return Err(bad("NUL or CR inside a line", at + i));
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(bad("type=value line", at));
            }
            lines.push((at, bytes[0], base.slice_ref(&line[2..])));
        }
        let mut it = lines.into_iter();
        match it.next() {
            Some((_, b'v', v)) if v.as_str() == "0" => {}
            Some((at, ..)) => return Err(bad("v=0 first", at)),
            None => return Err(bad("v=0 first", 0)),
        }
        let origin = match it.next() {
            Some((at, b'o', v)) => parse_origin(&v).ok_or_else(|| bad("o= origin", at))?,
            Some((at, ..)) => return Err(bad("o= after v=", at)),
            None => return Err(bad("o= after v=", text.len())),
        };
        let name = match it.next() {
            Some((_, b's', v)) => v,
            Some((at, ..)) => return Err(bad("s= after o=", at)),
            None => return Err(bad("s= after o=", text.len())),
        };
        let mut session = Session {
            origin,
            name,
            connection: None,
            attributes: Vec::new(),
            other: Vec::new(),
            media: Vec::new(),
        };
        for (at, kind, value) in it {
            match kind {
                b'm' => {
                    let media = parse_media_line(&value).ok_or_else(|| bad("m= media", at))?;
                    session.media.push(media);
                }
                b'c' => {
                    let c = parse_connection(&value).ok_or_else(|| bad("c= connection", at))?;
                    match session.media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => session.connection = Some(c),
                    }
                }
                b'a' => {
                    let a = parse_attribute(&value);
                    match session.media.last_mut() {
                        Some(m) => m.attributes.push(a),
                        None => session.attributes.push(a),
                    }
                }
                b'v' | b'o' | b's' => return Err(bad("single v=, o=, s=", at)),
                _ => {
                    let line = Line { kind, value };
                    match session.media.last_mut() {
                        Some(m) => m.other.push(line),
                        None => session.other.push(line),
                    }
                }
            }
        }
        // Unmodelled lines are kept in RFC 8866 order (the order they are written in),
        // so that parse(serialise(s)) == s even when a peer sent them out of order.
        session.other.sort_by_key(|l| order(l.kind));
        for m in &mut session.media {
            m.other.sort_by_key(|l| order(l.kind));
        }
        Ok(session)
    }

    /// Serialises with CRLF line ends, in RFC 8866 line order.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

fn parse_origin(v: &ByteStr) -> Option<Origin> {
    let parts: Vec<&str> = v.split(' ').collect();
    let [user, id, version, net, addr_type, address] = parts.as_slice() else {
        return None;
    };
    if *net != "IN" || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Origin {
        username: v.slice_ref(user),
        session_id: v.slice_ref(id),
        session_version: version.parse().ok()?,
        addr_type: v.slice_ref(addr_type),
        address: v.slice_ref(address),
    })
}

fn parse_connection(v: &ByteStr) -> Option<Connection> {
    let parts: Vec<&str> = v.split(' ').collect();
    let [net, addr_type, address] = parts.as_slice() else {
        return None;
    };
    (*net == "IN" && !address.is_empty()).then(|| Connection {
        addr_type: v.slice_ref(addr_type),
        address: v.slice_ref(address),
    })
}

fn parse_attribute(v: &ByteStr) -> Attribute {
    match v.split_once(':') {
        Some((name, value)) => Attribute {
            name: v.slice_ref(name),
            value: Some(v.slice_ref(value)),
        },
        None => Attribute {
            name: v.clone(),
            value: None,
        },
    }
}

fn parse_media_line(v: &ByteStr) -> Option<Media> {
    let mut parts = v.split(' ');
    let kind = parts.next().filter(|k| !k.is_empty())?;
    let port_text = parts.next()?;
    let (port, count) = match port_text.split_once('/') {
        Some((p, c)) => (p.parse().ok()?, Some(c.parse().ok()?)),
        None => (port_text.parse().ok()?, None),
    };
    let proto = parts.next().filter(|p| !p.is_empty())?;
    let formats: Vec<ByteStr> = parts
        .filter(|f| !f.is_empty())
        .map(|f| v.slice_ref(f))
        .collect();
    if formats.is_empty() {
        return None;
    }
    Some(Media {
        kind: v.slice_ref(kind),
        port,
        port_count: count,
        proto: v.slice_ref(proto),
        formats,
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    })
}

/// RFC 8866 §5 order of the lines we keep raw (unknown letters go just before `a=`).
fn order(kind: u8) -> u8 {
    match kind {
        b'i' => 1,
        b'u' => 2,
        b'e' => 3,
        b'p' => 4,
        b'b' => 6,
        b't' => 7,
        b'r' => 8,
        b'z' => 9,
        b'k' => 10,
        _ => 11,
    }
}

fn write_lines(
    f: &mut fmt::Formatter<'_>,
    lines: &[Line],
    range: std::ops::RangeInclusive<u8>,
) -> fmt::Result {
    let mut sorted: Vec<&Line> = lines
        .iter()
        .filter(|l| range.contains(&order(l.kind)))
        .collect();
    sorted.sort_by_key(|l| order(l.kind));
    for l in sorted {
        write!(f, "{}={}\r\n", l.kind as char, l.value)?;
    }
    Ok(())
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c=IN {} {}\r\n", self.addr_type, self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "a={}:{}\r\n", self.name, v),
            None => write!(f, "a={}\r\n", self.name),
        }
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.session_version, o.addr_type, o.address, self.name
        )?;
        write_lines(f, &self.other, 1..=4)?;
        if let Some(c) = &self.connection {
            c.fmt(f)?;
        }
        // Written as modelled: a description without t= (which we accept leniently)
        // stays without one; answer() always adds `t=0 0`.
        write_lines(f, &self.other, 6..=11)?;
        for a in &self.attributes {
            a.fmt(f)?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            write_lines(f, &m.other, 1..=1)?;
            if let Some(c) = &m.connection {
                c.fmt(f)?;
            }
            write_lines(f, &m.other, 2..=11)?;
            for a in &m.attributes {
                a.fmt(f)?;
            }
        }
        Ok(())
    }
}

/// A codec we can handle, for the offer/answer helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name (`PCMU`, `PCMA`, `G722`, `opus`...), compared case-insensitively.
    pub name: &'static str,
    /// Clock rate as written in rtpmap (G.722 is 8000 by RFC 3551's historical error).
    pub clock_rate: u32,
    /// Channels when rtpmap gives them (`opus/48000/2`).
    pub channels: Option<u8>,
}

impl Codec {
    /// PCMU/8000.
    pub const PCMU: Codec = Codec {
        name: "PCMU",
        clock_rate: 8000,
        channels: None,
    };
    /// PCMA/8000.
    pub const PCMA: Codec = Codec {
        name: "PCMA",
        clock_rate: 8000,
        channels: None,
    };
    /// G722/8000.
    pub const G722: Codec = Codec {
        name: "G722",
        clock_rate: 8000,
        channels: None,
    };
    /// opus/48000/2.
    pub const OPUS: Codec = Codec {
        name: "opus",
        clock_rate: 48000,
        channels: Some(2),
    };

    fn matches(&self, map: &RtpMap) -> bool {
        map.encoding.eq_ignore_ascii_case(self.name) && map.clock_rate == self.clock_rate
    }
}

/// What we offer to answer with: codecs, address and ports.
#[derive(Debug, Clone)]
pub struct AnswerPolicy {
    /// Codecs in our order of preference: those in the offer come first in the answer.
    pub preferred: Vec<Codec>,
    /// Other codecs we accept: those in the offer follow, in the offer's order.
    pub accepted: Vec<Codec>,
    /// Whether we take RFC 4733 telephone-event (kept with the offer's payload type).
    pub telephone_event: bool,
    /// The direction we want (sendrecv normally; sendonly to put the peer on hold).
    pub direction: Direction,
    /// Whether we accept rtcp-mux.
    pub rtcp_mux: bool,
    /// Our origin (session id and version are the caller's to manage).
    pub origin: Origin,
    /// Our media address (`c=`).
    pub connection: Connection,
}

/// Builds the RFC 3264 answer to `offer`. `ports` gives our port for each m= line of the
/// offer (`None` rejects it); audio streams with no joint codec are rejected with port 0,
/// as are media kinds we have no port for.
pub fn answer(offer: &Session, policy: &AnswerPolicy, ports: &[Option<u16>]) -> Session {
    let session_dir = offer.direction();
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let port = ports.get(i).copied().flatten();
            let offered: Vec<(u8, RtpMap)> = m
                .payload_types()
                .filter_map(|pt| Some((pt, m.rtpmap(pt)?)))
                .collect();
            let mut chosen: Vec<u8> = Vec::new();
            for codec in &policy.preferred {
                if let Some((pt, _)) = offered
                    .iter()
                    .find(|(pt, map)| codec.matches(map) && !chosen.contains(pt))
                {
                    chosen.push(*pt);
                }
            }
            for (pt, map) in &offered {
                if policy.accepted.iter().any(|c| c.matches(map)) && !chosen.contains(pt) {
                    chosen.push(*pt);
                }
            }
            let audio_ok = m.kind.as_str() == "audio" && port.is_some() && !chosen.is_empty();
            if !audio_ok {
                // Rejected: port 0 and the offer's formats (a format list can't be empty).
                return Media {
                    kind: m.kind.clone(),
                    port: 0,
                    port_count: None,
                    proto: m.proto.clone(),
                    formats: m.formats.clone(),
                    connection: None,
                    attributes: Vec::new(),
                    other: Vec::new(),
                };
            }
            // Events at the first chosen codec's clock (RFC 4733 §2.1: Opus at
            // 48000 takes telephone-event/48000), else at 8000.
            let clock = chosen
                .first()
                .and_then(|pt| offered.iter().find(|(p, _)| p == pt))
                .map_or(8000, |(_, map)| map.clock_rate);
            let event_at = |rate: u32| {
                offered.iter().find(|(_, map)| {
                    map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == rate
                })
            };
            let events = event_at(clock).or_else(|| event_at(8000));
            let mut attributes = Vec::new();
            let mut formats = Vec::new();
            let mut add = |pt: u8, map: &RtpMap, fmtp: Option<&str>| {
                formats.push(ByteStr::from(pt.to_string()));
                let mut v = format!("{pt} {}/{}", map.encoding, map.clock_rate);
                if let Some(ch) = map.channels {
                    v.push_str(&format!("/{ch}"));
                }
                attributes.push(Attribute {
                    name: ByteStr::from_static("rtpmap"),
                    value: Some(ByteStr::from(v)),
                });
                if let Some(p) = fmtp.filter(|p| !p.is_empty()) {
                    attributes.push(Attribute {
                        name: ByteStr::from_static("fmtp"),
                        value: Some(ByteStr::from(format!("{pt} {p}"))),
                    });
                }
            };
            for pt in &chosen {
                if let Some((_, map)) = offered.iter().find(|(p, _)| p == pt) {
                    add(*pt, map, m.fmtp(*pt));
                }
            }
            if let (true, Some((pt, map))) = (policy.telephone_event, events) {
                add(*pt, map, Some(m.fmtp(*pt).unwrap_or("0-16")));
            }
            if let Some(ptime) = m.ptime() {
                attributes.push(Attribute {
                    name: ByteStr::from_static("ptime"),
                    value: Some(ByteStr::from(ptime.to_string())),
                });
            }
            if policy.rtcp_mux && m.rtcp_mux() {
                attributes.push(Attribute {
                    name: ByteStr::from_static("rtcp-mux"),
                    value: None,
                });
            }
            let dir = m.direction(session_dir).answer(policy.direction);
            attributes.push(Attribute {
                name: ByteStr::from_static(dir.as_str()),
                value: None,
            });
            Media {
                kind: m.kind.clone(),
                port: port.unwrap_or(0),
                port_count: None,
                proto: m.proto.clone(),
                formats,
                connection: None,
                attributes,
                other: Vec::new(),
            }
        })
        .collect();
    Session {
        origin: policy.origin.clone(),
        name: ByteStr::from_static("pbxkit"),
        connection: Some(policy.connection.clone()),
        attributes: Vec::new(),
        other: vec![Line {
            kind: b't',
            value: ByteStr::from_static("0 0"),
        }],
        media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\ni=a call\r\nc=IN IP4 198.51.100.1\r\nb=AS:64\r\nt=0 0\r\nx=unknown line\r\na=tool:phone\r\nm=audio 49170 RTP/AVP 0 8 9 101 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=ptime:20\r\na=rtcp:49171 IN IP4 198.51.100.1\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\na=sendrecv\r\nm=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";

    fn policy() -> AnswerPolicy {
        AnswerPolicy {
            preferred: vec![Codec::G722, Codec::PCMA],
            accepted: vec![Codec::PCMU, Codec::PCMA],
            telephone_event: true,
            direction: Direction::SendRecv,
            rtcp_mux: true,
            origin: Origin {
                username: "-".into(),
                session_id: "1".into(),
                session_version: 1,
                addr_type: "IP4".into(),
                address: "203.0.113.5".into(),
            },
            connection: Connection {
                addr_type: "IP4".into(),
                address: "203.0.113.5".into(),
            },
        }
    }

    #[test]
    fn parses_and_round_trips_with_unknown_lines() {
        let s = Session::parse(OFFER).unwrap();
        assert_eq!(s.origin.session_version, 2890844526);
        assert_eq!(s.media.len(), 2);
        let a = &s.media[0];
        assert_eq!(a.port, 49170);
        assert_eq!(a.payload_types().collect::<Vec<_>>(), [0, 8, 9, 101, 96]);
        assert_eq!(a.rtpmap(96).unwrap().channels, Some(2));
        assert_eq!(a.fmtp(101), Some("0-15"));
        assert_eq!(a.ptime(), Some(20));
        assert_eq!(a.rtcp(), Some((49171, Some("198.51.100.1"))));
        assert_eq!(a.cryptos().next().unwrap().suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(a.direction(s.direction()), Direction::SendRecv);
        assert_eq!(s.to_string(), OFFER);
        assert_eq!(Session::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        let s = Session::parse("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0 8\n").unwrap();
        assert_eq!(s.media[0].rtpmap(8).unwrap().encoding, "PCMA");
    }

    #[test]
    fn answer_prefers_ours_then_offer_order() {
        let offer = Session::parse(OFFER).unwrap();
        let ans = answer(&offer, &policy(), &[Some(20000), Some(20002)]);
        let audio = &ans.media[0];
        // Preferred G722, PCMA first (our order), then PCMU (offer order), then events.
        assert_eq!(audio.payload_types().collect::<Vec<_>>(), [9, 8, 0, 101]);
        assert_eq!(audio.fmtp(101), Some("0-15"));
        assert_eq!(audio.port, 20000);
        assert_eq!(audio.direction(Direction::SendRecv), Direction::SendRecv);
        assert_eq!(audio.ptime(), Some(20));
        // Video: we have no codec, so it is rejected with port 0.
        assert_eq!(ans.media[1].port, 0);
        assert_eq!(ans.media[1].formats, offer.media[1].formats);
        assert_eq!(Session::parse(&ans.to_string()).unwrap(), ans);
    }

    #[test]
    fn answer_takes_the_telephone_event_at_the_codecs_clock() {
        let offer = Session::parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96 0 101 102\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:102 telephone-event/48000\r\n").unwrap();
        let opus = Codec {
            name: "opus",
            clock_rate: 48000,
            channels: Some(2),
        };
        let mut p = policy();
        p.preferred = vec![opus];
        let ans = answer(&offer, &p, &[Some(20000)]);
        assert_eq!(
            ans.media[0].payload_types().collect::<Vec<_>>(),
            [96, 0, 102]
        );
        // PCMU first: the 8000 Hz one.
        p.preferred = vec![Codec::PCMU];
        let ans = answer(&offer, &p, &[Some(20000)]);
        assert_eq!(ans.media[0].payload_types().collect::<Vec<_>>(), [0, 101]);
    }

    #[test]
    fn answer_rejects_when_nothing_is_joint_and_follows_hold() {
        let offer = Session::parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=sendonly\r\n").unwrap();
        assert_eq!(answer(&offer, &policy(), &[Some(20000)]).media[0].port, 0);
        let hold = Session::parse("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap();
        let ans = answer(&hold, &policy(), &[Some(20000)]);
        assert_eq!(
            ans.media[0].direction(Direction::SendRecv),
            Direction::RecvOnly
        );
        assert_eq!(
            Direction::Inactive.answer(Direction::SendRecv),
            Direction::Inactive
        );
        assert_eq!(
            Direction::SendRecv.answer(Direction::SendOnly),
            Direction::SendOnly
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "o=x",
            "v=1\r\n",
            "v=0\r\ns=-\r\n",
            "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP\r\n",
            "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nbad line\r\n",
            "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n",
        ] {
            assert!(Session::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cr_inside_a_line_is_refused() {
        // Found by fuzzing: a CR inside a line (not before its LF) was taken as part of
        // a value and lost on the way back; RFC 8866 text may not hold CR.
        assert!(
            Session::parse("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r ").is_err()
        );
        assert!(
            Session::parse("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n").is_ok()
        );
        assert!(Session::parse("v=0\no=- 1 1 IN IP4 a\ns=-\nm=audio 1 RTP/AVP 0").is_ok());
    }

    #[test]
    fn a_description_without_time_line_round_trips() {
        // Found by fuzzing: the serialiser used to add `t=0 0`, so the model changed.
        let s = Session::parse(
            "v=0\r\no=- 1 0 IN IP6 2001:db8::20\r\ns=-\r\nc=IN IP6 2001:db8::20\r\n",
        )
        .unwrap();
        assert_eq!(Session::parse(&s.to_string()).unwrap(), s);
        let crash = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/sdp/crash-missing-time-line"
        ))
        .unwrap();
        crate::fuzzing::sdp(&crash);
    }

    #[test]
    fn ipv6_connection() {
        // RFC 5118 §4.6.
        let s = Session::parse("v=0\r\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\ns=Live video feed\r\nc=IN IP6 2001:db8::20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(s.media_address(&s.media[0]), Some("2001:db8::20"));
        assert_eq!(s.origin.addr_type, "IP6");
    }
}
