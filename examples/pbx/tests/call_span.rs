//! What the PBX logs about a call is logged inside the call's span, so that an
//! operator can follow one call through the log. Its own test binary: tracing's
//! callsite interest is process-wide, and another test's thread with no
//! subscriber could otherwise cache the span's callsite as disabled.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod sim;

use bytes::Bytes;
use pbxkit::engine::{Application, CallId, Media};
use pbxkit_sip::StatusCode;
use sim::*;
use std::sync::Arc;
use std::time::Duration;

/// A media that logs what it is asked, as the PBX's relay logs its trouble.
#[derive(Debug)]
struct LoggingMedia;

impl Media for LoggingMedia {
    fn offer(&mut self, _: CallId, _: bool, _: &Bytes) -> Option<Bytes> {
        tracing::warn!("media offer");
        None
    }

    fn answer(&mut self, _: CallId, _: bool, _: Option<&Bytes>, _: &Bytes) -> Option<Bytes> {
        tracing::warn!("media answer");
        None
    }

    fn application(&mut self, _: CallId, _: &Application, _: &Bytes) -> Result<Bytes, StatusCode> {
        Err(StatusCode::NOT_ACCEPTABLE_HERE)
    }

    fn close(&mut self, _: CallId) {
        tracing::warn!("media closed");
    }
}

/// Where the test's tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn what_is_logged_for_a_call_carries_the_calls_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut sim = Sim::with_media(11, 2, 0, 0, dialplan(2), LoggingMedia);
        sim.give_up = 0;
        sim.phones[1].script = Some(Script::Answer(Duration::from_millis(200)));
        sim.phones[1].quiet = true;
        let t0 = sim.now;
        sim.run(vec![(t0, 0, 1)], t0 + Duration::from_secs(2));
        // The callee hangs up: the call's end is logged in its span too.
        let ids: Vec<u32> = sim.phones[1].legs.keys().copied().collect();
        for id in ids {
            sim.phones[1].acts.push((sim.now, Act::HangUp(id)));
        }
        let now = sim.now;
        sim.run(Vec::new(), now + Duration::from_secs(2));
        assert_eq!(sim.engine.calls(), 0);
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for what in ["media offer", "media answer", "media closed"] {
        let line = lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} not logged: {log}"));
        assert!(
            line.contains("call{call_id=1000c1 caller=1000 dialed=1001}"),
            "{line}"
        );
    }
}
