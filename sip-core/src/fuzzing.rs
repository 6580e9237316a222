//! Entry points for the fuzz targets in `fuzz/` and for replaying their seed corpora in
//! `cargo test`. Each function takes arbitrary bytes and must never panic.

use crate::{HeaderName, Message, StreamDecoder, StreamLimits, Uri};

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets of this crate, by name (the file names in `fuzz/fuzz_targets/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sip_uri", sip_uri),
    ("sip_stream", sip_stream),
    ("sdp", sdp),
];

/// Parses a datagram, reads every typed header, and checks that a message that parsed
/// re-serialises into one that parses to the same model.
pub fn sip_message(data: &[u8]) {
    let Ok(message) = Message::parse(data.to_vec()) else {
        return;
    };
    // A message that parses has usable essential headers, every Via included: parsing
    // only checked them, and these build them, so this also checks that the two agree.
    assert!(message.top_via().is_ok() && message.from().is_ok() && message.to().is_ok());
    assert!(message.call_id().is_ok() && message.cseq().is_ok());
    assert!(
        message.vias().all(|v| v.is_ok()),
        "a Via that does not parse"
    );
    if let (Some(method), Ok(cseq)) = (message.method(), message.cseq()) {
        assert_eq!(
            method, &cseq.method,
            "CSeq method checked against the request's"
        );
    }
    exercise(&message);
    let wire = message.to_bytes();
    match Message::parse(wire.clone()) {
        // Serialising adds a Content-Length when the message had none (UDP allows that).
        Ok(again) => assert_eq!(
            without_length(again),
            without_length(message),
            "round trip changed {wire:?}"
        ),
        Err(e) => panic!("serialised message does not parse: {e}: {wire:?}"),
    }
}

fn without_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

/// Checking a value without building it accepts what building accepts, with the
/// same error: on every header of the message, whatever its name.
fn check_agrees_with_parse(h: &crate::headers::HeaderRef<'_>) {
    use crate::{CSeq, CallId, NameAddr, Via};
    fn same<T: crate::headers::CheckValue>(h: &crate::headers::HeaderRef<'_>) {
        assert_eq!(h.check::<T>(), h.parse::<T>().map(drop), "{:?}", h.value);
        let built = h.parse_list::<T>().try_fold(0, |n, r| r.map(|_| n + 1));
        assert_eq!(h.check_list::<T>(), built, "{:?}", h.value);
    }
    same::<Via>(h);
    same::<NameAddr>(h);
    same::<CallId>(h);
    same::<CSeq>(h);
}

fn exercise(m: &Message) {
    for via in m.vias().flatten() {
        let _ = (via.branch(), via.received(), via.rport());
    }
    for h in m.headers().iter() {
        check_agrees_with_parse(&h);
    }
    let _ = (
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
    );
    for c in m.contacts().flatten() {
        let _ = c.to_string();
    }
    for h in m.headers().iter() {
        let _ = h.parse::<crate::Auth>();
        let _ = h.parse::<crate::NameAddr>();
        let _ = h.parse::<crate::Parameterised>();
        let _ = h.parse::<crate::SipDate>();
        let _ = h.parse::<crate::Replaces>();
        let _ = h.parse::<crate::MediaType>();
        let _ = h.parse::<crate::Timestamp>();
        let _ = h.parse::<crate::Privacy>();
        if let Ok(r) = h.parse::<crate::cause::Reason>() {
            // What we print, we read back: same protocol and cause.
            match r.to_string().parse::<crate::cause::Reason>() {
                Ok(back) => assert_eq!((back.protocol, back.cause), (r.protocol, r.cause)),
                Err(e) => panic!("{r} does not parse back: {e}"),
            }
        }
        let _ = h.parse_list::<crate::Token>().count();
    }
    let _ = m.headers().typed::<u32>(&HeaderName::ContentLength);
}

/// Parses a URI and checks that its serialisation parses to an equivalent URI.
pub fn sip_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(text) else {
        return;
    };
    let again = Uri::parse(&uri.to_string()).expect("serialised URI parses");
    assert_eq!(again, uri);
    assert!(uri.equivalent(&again));
}

/// Feeds the bytes to a stream decoder in chunks whose sizes come from the data.
pub fn sip_stream(data: &[u8]) {
    let mut d = StreamDecoder::new(StreamLimits {
        max_header_bytes: 4096,
        max_body_bytes: 4096,
    });
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(step) {
        d.extend(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(crate::Frame::Message(m))) => exercise(&m),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Parses SDP; a description that parses re-serialises to the same model, and the
/// answer built from it parses too.
pub fn sdp(data: &[u8]) {
    use crate::sdp::{AnswerPolicy, Codec, Connection, Direction, Origin, Session, answer};
    let Ok(session) = Session::parse_body(data) else {
        return;
    };
    let again = Session::parse(&session.to_string()).expect("serialised SDP parses");
    assert_eq!(again, session);
    let policy = AnswerPolicy {
        preferred: vec![Codec::G722, Codec::PCMU],
        accepted: vec![Codec::PCMA, Codec::OPUS],
        telephone_event: true,
        direction: Direction::SendRecv,
        rtcp_mux: true,
        origin: Origin {
            username: "-".into(),
            session_id: "1".into(),
            session_version: 1,
            addr_type: "IP4".into(),
            address: "192.0.2.1".into(),
        },
        connection: Connection {
            addr_type: "IP4".into(),
            address: "192.0.2.1".into(),
        },
    };
    let ports: Vec<Option<u16>> = (0..session.media.len())
        .map(|i| Some(20000 + 2 * (i as u16 % 1000)))
        .collect();
    let ans = answer(&session, &policy, &ports);
    assert_eq!(
        Session::parse(&ans.to_string()).expect("answer parses"),
        ans
    );
}
