//! Session timers (RFC 4028) on each leg of a call: what the PBX asks for and
//! answers, and when a leg is due for a refresh or has expired.
//!
//! The PBX keeps a timer on every leg, also with phones that know nothing of session
//! timers: then it is the refresher itself (a re-INVITE with the SDP the phone already
//! has, as Asterisk's `session-timers=originate` does). A phone that has gone away
//! without a BYE fails that refresh (408, 481) and the call is hung up instead of
//! holding its ports and its user's busy state for ever.

use crate::config::Sip;
use pbxkit_sip::dialog::{Refresher, SessionTimer};
use pbxkit_sip::{ByteStr, HeaderName, Message};
use tokio::time::Instant;

/// The timer of a leg towards a caller, from its INVITE (or re-INVITE, UPDATE): what
/// it asked for, else ours with the PBX refreshing. `Err(min_se)` when it asked for
/// less than our minimum (answer 422 with that Min-SE).
pub(crate) fn for_caller(request: &Message, sip: &Sip) -> Result<Option<SessionTimer>, u32> {
    match SessionTimer::negotiate_uas(request, sip.min_se) {
        Ok(Some(t)) => Ok(Some(t)),
        Ok(None) => Ok(ours(sip)),
        Err(_) => Err(sip.min_se),
    }
}

/// The timer of a leg towards a callee, from its 2xx: what it chose, else ours.
pub(crate) fn for_callee(response: &Message, sip: &Sip) -> Option<SessionTimer> {
    SessionTimer::negotiate_uac(response).or_else(|| ours(sip))
}

/// Our own timer, the PBX refreshing; `None` when session timers are off.
fn ours(sip: &Sip) -> Option<SessionTimer> {
    (sip.session_expires > 0).then_some(SessionTimer {
        interval: sip.session_expires,
        refresher: Refresher::Local,
    })
}

/// Headers of an initial INVITE towards a callee: we support timers, and our interval
/// (the callee chooses who refreshes).
pub(crate) fn offer(invite: &mut Message, sip: &Sip) {
    if sip.session_expires == 0 {
        return;
    }
    let h = invite.headers_mut();
    h.push(HeaderName::Supported, ByteStr::from_static("timer"));
    h.push(HeaderName::SessionExpires, sip.session_expires.to_string());
    h.push(HeaderName::MinSe, sip.min_se.to_string());
}

/// Headers of a request we send on a leg with `timer` (a refresh or relayed re-INVITE).
pub(crate) fn request(msg: &mut Message, timer: Option<SessionTimer>) {
    if let Some(t) = timer {
        let h = msg.headers_mut();
        h.push(HeaderName::Supported, ByteStr::from_static("timer"));
        h.push(HeaderName::SessionExpires, t.header_value_uac());
    }
}

/// Headers of our 2xx to `request` on a leg with `timer`. `Require: timer` only when
/// the phone said it supports them (RFC 4028 §9); otherwise it ignores the header and
/// the PBX refreshes.
pub(crate) fn response(msg: &mut Message, request: &Message, timer: Option<SessionTimer>) {
    let Some(t) = timer else { return };
    let supports = request.headers().all(&HeaderName::Supported).any(|h| {
        h.value
            .split(',')
            .any(|o| o.trim().eq_ignore_ascii_case("timer"))
    });
    let h = msg.headers_mut();
    h.push(HeaderName::SessionExpires, t.header_value_uas());
    if supports {
        h.push(HeaderName::Require, ByteStr::from_static("timer"));
    }
}

/// What a leg's timer asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The PBX refreshes the session now.
    Refresh,
    /// The phone should have refreshed and did not: the call is over.
    Expired,
}

/// When a leg with `timer`, last refreshed at `since`, is next due, and for what.
pub(crate) fn next(timer: Option<SessionTimer>, since: Instant) -> Option<(Instant, Due)> {
    let t = timer?;
    let since_std = since.into_std();
    Some(match t.refresh_at(since_std) {
        Some(at) => (Instant::from_std(at), Due::Refresh),
        None => (Instant::from_std(t.expires_at(since_std)), Due::Expired),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sip(session_expires: u32) -> Sip {
        Sip {
            listen: "127.0.0.1:5060".parse().unwrap(),
            realm: "pbxkit".into(),
            session_expires,
            min_se: 90,
            nonce_secret: None,
            t1_ms: 500,
            ..Sip::default()
        }
    }

    fn invite(extra: &str) -> Message {
        Message::parse(
            format!(
                "INVITE sip:1001@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:1000@h>;tag=1\r\nTo: <sip:1001@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                 {extra}Content-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn callers_choose_else_the_pbx_refreshes() {
        let asked = for_caller(
            &invite("Supported: timer\r\nSession-Expires: 600;refresher=uac\r\n"),
            &sip(1800),
        )
        .unwrap()
        .unwrap();
        assert_eq!((asked.interval, asked.refresher), (600, Refresher::Remote));
        let ours = for_caller(&invite(""), &sip(1800)).unwrap().unwrap();
        assert_eq!((ours.interval, ours.refresher), (1800, Refresher::Local));
        assert_eq!(for_caller(&invite(""), &sip(0)), Ok(None));
        assert_eq!(
            for_caller(&invite("Session-Expires: 60\r\n"), &sip(1800)),
            Err(90)
        );
    }

    #[test]
    fn require_timer_only_for_phones_that_support_it() {
        let t = Some(SessionTimer {
            interval: 600,
            refresher: Refresher::Remote,
        });
        let mut ok = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
              To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .unwrap();
        let mut plain = ok.clone();
        response(&mut ok, &invite("Supported: 100rel, timer\r\n"), t);
        assert_eq!(
            ok.headers()
                .first(&HeaderName::Require)
                .map(|h| h.value.to_owned()),
            Some("timer".to_owned())
        );
        response(&mut plain, &invite(""), t);
        assert!(plain.headers().first(&HeaderName::Require).is_none());
        assert!(plain.headers().first(&HeaderName::SessionExpires).is_some());
    }

    #[test]
    fn the_refresher_is_due_at_half_the_interval_the_other_side_expires_later() {
        let now = Instant::now();
        let local = SessionTimer {
            interval: 90,
            refresher: Refresher::Local,
        };
        let remote = SessionTimer {
            refresher: Refresher::Remote,
            ..local
        };
        assert_eq!(
            next(Some(local), now),
            Some((now + Duration::from_secs(45), Due::Refresh))
        );
        assert_eq!(
            next(Some(remote), now),
            Some((now + Duration::from_secs(60), Due::Expired))
        );
        assert_eq!(next(None, now), None);
    }
}
