//! The notifier of event subscriptions through its public API, in simulated time:
//! new, refreshed, fetched and ended subscriptions, bounds, and the NOTIFYs'
//! headers.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_sip::subscription::{Notifier, NotifierConfig, Reason, State};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Uri};
use std::time::{Duration, Instant};

fn subscribe(call_id: &str, cseq: u32, to_tag: Option<&str>, expires: Option<u32>) -> Message {
    let to = match to_tag {
        Some(t) => format!("<sip:1001@pbx.example>;tag={t}"),
        None => "<sip:1001@pbx.example>".to_owned(),
    };
    let expires = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
    Message::parse(format!(
        "SUBSCRIBE sip:1001@pbx.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK{call_id}{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:1001@pbx.example>;tag=phone\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1001@192.0.2.7:5062>\r\n\
         Event: message-summary\r\n{expires}Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

fn header(m: &Message, name: HeaderName) -> Option<String> {
    m.headers().first(&name).map(|h| h.value.to_string())
}

fn contact() -> Uri {
    Uri::parse("sip:pbx@192.0.2.1:5060").unwrap()
}

const VIA: &str = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnotify";

#[test]
fn a_subscription_is_notified_refreshed_and_ended_by_its_subscriber() {
    let t0 = Instant::now();
    let mut n = Notifier::new(NotifierConfig::default());
    let first = subscribe("a", 1, None, Some(600));
    let accepted = n.subscribe(&first, "1001", "ours", &contact(), t0).unwrap();
    assert!(accepted.new);
    assert_eq!(accepted.expires, Duration::from_secs(600));
    assert_eq!(
        header(&accepted.response, HeaderName::Expires).as_deref(),
        Some("600")
    );
    assert_eq!(accepted.response.to().unwrap().tag(), Some("ours"));
    assert_eq!(n.resource(&accepted.id), Some(&"1001"));

    let notify = n
        .notify(
            &accepted.id,
            State::Active,
            "application/simple-message-summary",
            "Messages-Waiting: no\r\n",
            VIA,
            t0 + Duration::from_secs(100),
        )
        .unwrap();
    assert_eq!(notify.method(), Some(&Method::Notify));
    assert_eq!(
        notify.request_uri().unwrap().to_string(),
        "sip:1001@192.0.2.7:5062"
    );
    assert_eq!(notify.call_id().unwrap().0, "a");
    assert_eq!(notify.from().unwrap().tag(), Some("ours"));
    assert_eq!(notify.to().unwrap().tag(), Some("phone"));
    assert_eq!(
        header(&notify, HeaderName::Event).as_deref(),
        Some("message-summary")
    );
    assert_eq!(
        header(&notify, HeaderName::SubscriptionState).as_deref(),
        Some("active;expires=500")
    );
    assert_eq!(
        header(&notify, HeaderName::ContentType).as_deref(),
        Some("application/simple-message-summary")
    );
    assert_eq!(&notify.body[..], b"Messages-Waiting: no\r\n");
    let seq = notify.cseq().unwrap().seq;

    // A refresh in the dialog: same subscription, new expiry.
    let refresh = subscribe("a", 2, Some("ours"), Some(900));
    let again = n
        .subscribe(
            &refresh,
            "1001",
            "unused",
            &contact(),
            t0 + Duration::from_secs(200),
        )
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.id, accepted.id);
    assert_eq!(n.len(), 1);
    let notify = n
        .notify(
            &again.id,
            State::Active,
            "t",
            "x",
            VIA,
            t0 + Duration::from_secs(200),
        )
        .unwrap();
    assert_eq!(
        header(&notify, HeaderName::SubscriptionState).as_deref(),
        Some("active;expires=900")
    );
    assert_eq!(
        notify.cseq().unwrap().seq,
        seq + 1,
        "each NOTIFY the next CSeq"
    );

    // Unsubscribed: the last NOTIFY says terminated, and the subscription is gone.
    let end = subscribe("a", 3, Some("ours"), Some(0));
    let ended = n
        .subscribe(
            &end,
            "1001",
            "unused",
            &contact(),
            t0 + Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(ended.expires, Duration::ZERO);
    let last = n
        .notify(
            &ended.id,
            State::Active,
            "t",
            "",
            VIA,
            t0 + Duration::from_secs(300),
        )
        .unwrap();
    assert!(
        header(&last, HeaderName::SubscriptionState)
            .unwrap()
            .starts_with("terminated")
    );
    assert_eq!(
        header(&last, HeaderName::ContentType),
        None,
        "no body, no type"
    );
    assert!(n.is_empty());
    assert_eq!(n.watching(&"1001").count(), 0);
}

#[test]
fn expiries_are_bounded_and_unknown_or_excess_subscriptions_refused() {
    let t0 = Instant::now();
    let config = NotifierConfig {
        max_per_resource: 2,
        ..NotifierConfig::default()
    };
    let mut n = Notifier::new(config);
    let short = n
        .subscribe(
            &subscribe("s", 1, None, Some(10)),
            "1001",
            "t",
            &contact(),
            t0,
        )
        .unwrap_err();
    assert_eq!(
        short.response.status(),
        Some(StatusCode::INTERVAL_TOO_BRIEF)
    );
    assert_eq!(
        header(&short.response, HeaderName::MinExpires).as_deref(),
        Some("60")
    );
    let long = n
        .subscribe(
            &subscribe("l", 1, None, Some(999_999)),
            "1001",
            "t1",
            &contact(),
            t0,
        )
        .unwrap();
    assert_eq!(long.expires, Duration::from_secs(7200));
    let default = n
        .subscribe(&subscribe("d", 1, None, None), "1001", "t2", &contact(), t0)
        .unwrap();
    assert_eq!(default.expires, Duration::from_secs(3600));
    // Two per resource: a third is refused, another resource is not.
    let third = n
        .subscribe(
            &subscribe("x", 1, None, Some(600)),
            "1001",
            "t3",
            &contact(),
            t0,
        )
        .unwrap_err();
    assert_eq!(
        third.response.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(
        n.subscribe(
            &subscribe("y", 1, None, Some(600)),
            "1002",
            "t4",
            &contact(),
            t0
        )
        .is_ok()
    );
    // A refresh of a dialog we do not have.
    let stray = n
        .subscribe(
            &subscribe("z", 5, Some("nope"), Some(600)),
            "1001",
            "t",
            &contact(),
            t0,
        )
        .unwrap_err();
    assert_eq!(
        stray.response.status(),
        Some(StatusCode::CALL_DOES_NOT_EXIST)
    );
    let text = String::from_utf8(subscribe("b", 1, None, None).to_bytes().to_vec())
        .unwrap()
        .replace("Event:", "Expires: soon\r\nEvent:");
    let bad = n.subscribe(&Message::parse(text).unwrap(), "1001", "t", &contact(), t0);
    assert_eq!(
        bad.unwrap_err().response.status(),
        Some(StatusCode::BAD_REQUEST)
    );
    // Removing one frees its place.
    n.remove(&long.id);
    assert!(
        n.subscribe(
            &subscribe("x", 1, None, Some(600)),
            "1001",
            "t5",
            &contact(),
            t0
        )
        .is_ok()
    );
}

#[test]
fn expired_subscriptions_end_with_a_timeout_notify_and_a_fetch_gets_one_notify() {
    let t0 = Instant::now();
    let mut n = Notifier::new(NotifierConfig::default());
    let a = n
        .subscribe(
            &subscribe("a", 1, None, Some(60)),
            "1001",
            "ta",
            &contact(),
            t0,
        )
        .unwrap();
    let b = n
        .subscribe(
            &subscribe("b", 1, None, Some(120)),
            "1001",
            "tb",
            &contact(),
            t0,
        )
        .unwrap();
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    assert!(n.handle_timeout(t0 + Duration::from_secs(59)).is_empty());
    let expired = n.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(expired, std::slice::from_ref(&a.id));
    let last = n
        .notify(
            &a.id,
            State::Active,
            "t",
            "",
            VIA,
            t0 + Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(
        header(&last, HeaderName::SubscriptionState).as_deref(),
        Some("terminated;reason=timeout")
    );
    assert_eq!(n.watching(&"1001").collect::<Vec<_>>(), [&b.id]);
    // The resource went away.
    let gone = n
        .notify(
            &b.id,
            State::Terminated(Reason::NoResource),
            "t",
            "",
            VIA,
            t0,
        )
        .unwrap();
    assert_eq!(
        header(&gone, HeaderName::SubscriptionState).as_deref(),
        Some("terminated;reason=noresource")
    );
    assert!(n.is_empty());
    // A fetch: Expires 0 on a new SUBSCRIBE, one NOTIFY, then nothing.
    let fetch = n
        .subscribe(
            &subscribe("f", 1, None, Some(0)),
            "1001",
            "tf",
            &contact(),
            t0,
        )
        .unwrap();
    assert!(fetch.new);
    let only = n
        .notify(&fetch.id, State::Active, "t", "state", VIA, t0)
        .unwrap();
    assert!(
        header(&only, HeaderName::SubscriptionState)
            .unwrap()
            .starts_with("terminated")
    );
    assert!(
        n.notify(&fetch.id, State::Active, "t", "state", VIA, t0)
            .is_none()
    );
}
