//! Property tests: built messages round-trip through serialise and parse; arbitrary and
//! mutated bytes never panic (and whatever parses re-serialises to the same model).
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_sip::*;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn uri_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!*_'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}|%[0-9A-F]{2}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec((uri_token(), prop::option::of(uri_token())), 0..3),
    )
        .prop_map(|(user, host, port, params)| {
            let mut s = String::from("sip:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Register),
        Just(Method::Options),
        Just(Method::Bye),
        "[A-Z]{3,10}".prop_map(|m| Method::parse(&m)),
    ]
}

/// Text for unknown headers: printable, no leading or trailing white space.
fn text() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,30}[!-~])?"
}

#[derive(Debug, Clone)]
struct Spec {
    request: Option<(Method, String)>,
    status: u16,
    via_hosts: Vec<String>,
    from_uri: String,
    to_uri: String,
    tag: String,
    call_id: String,
    seq: u32,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of((method(), sip_uri())),
        100u16..700,
        prop::collection::vec(host(), 1..4),
        sip_uri(),
        sip_uri(),
        token(),
        "[a-zA-Z0-9-]{1,20}(@[a-z0-9.]{1,12})?",
        0..=MAX_CSEQ,
        prop::collection::vec(("X-[A-Za-z0-9-]{1,10}", text()), 0..5),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(request, status, via_hosts, from_uri, to_uri, tag, call_id, seq, extra, body)| Spec {
                request,
                status,
                via_hosts,
                from_uri,
                to_uri,
                tag,
                call_id,
                seq,
                extra,
                body,
            },
        )
}

fn build(s: &Spec) -> Message {
    let (mut m, cseq_method) = match &s.request {
        Some((method, uri)) => (
            Message::request(method.clone(), Uri::parse(uri).unwrap()),
            method.clone(),
        ),
        None => {
            let code = StatusCode::new(s.status).unwrap();
            let mut m = Message::request(Method::Options, Uri::parse("sip:x").unwrap());
            m.start = StartLine::Response {
                code,
                reason: ByteStr::from(code.canonical_reason()),
            };
            (m, Method::Invite)
        }
    };
    for (i, h) in s.via_hosts.iter().enumerate() {
        m.headers_mut().push(
            HeaderName::Via,
            format!("SIP/2.0/UDP {h};branch=z9hG4bK{i}x;rport"),
        );
    }
    m.headers_mut()
        .push(HeaderName::From, format!("<{}>;tag={}", s.from_uri, s.tag));
    m.headers_mut()
        .push(HeaderName::To, format!("\"Bob \\\"B\\\"\" <{}>", s.to_uri));
    m.headers_mut().push(HeaderName::CallId, s.call_id.clone());
    m.headers_mut()
        .push(HeaderName::CSeq, format!("{} {}", s.seq, cseq_method));
    for (n, v) in &s.extra {
        m.headers_mut().push(HeaderName::parse(n), v.clone());
    }
    m.headers_mut()
        .push(HeaderName::ContentLength, s.body.len().to_string());
    m.body = Bytes::from(s.body.clone());
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn built_messages_round_trip(s in spec()) {
        let m = build(&s);
        let wire = m.to_bytes();
        let parsed = Message::parse(wire.clone()).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&wire))))?;
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.vias().count(), s.via_hosts.len());
        let from = parsed.from().unwrap();
        prop_assert_eq!(from.tag(), Some(s.tag.as_str()));
        prop_assert_eq!(parsed.to().unwrap().display.as_ref().unwrap().text(), "Bob \"B\"");
        prop_assert_eq!(parsed.cseq().unwrap().seq, s.seq);
        prop_assert_eq!(&parsed.body[..], &s.body[..]);
    }

    #[test]
    fn uris_round_trip(u in sip_uri()) {
        let uri = Uri::parse(&u).unwrap();
        let again = Uri::parse(&uri.to_string()).unwrap();
        prop_assert!(uri.equivalent(&again));
        prop_assert_eq!(uri, again);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        pbxkit_sip::fuzzing::sip_message(&data);
        pbxkit_sip::fuzzing::sip_stream(&data);
        pbxkit_sip::fuzzing::sip_uri(&data);
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        pick in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let names = ["wsinv", "intmeth", "esc01", "longreq"];
        let path = format!("{}/tests/rfc4475/{}.sip", env!("CARGO_MANIFEST_DIR"), names[pick]);
        let mut data = std::fs::read(path).unwrap();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        data.truncate(cut.index(data.len() + 1).max(1));
        pbxkit_sip::fuzzing::sip_message(&data);
        pbxkit_sip::fuzzing::sip_stream(&data);
    }
}
