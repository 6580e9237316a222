//! Calls the PBX answers itself: applications on the caller's media (the echo and
//! playback tests, a feature code's confirmation), and feature codes handed to the
//! PBX to act on.

use super::{AnyLeg, Application, CallId, Directory, Engine, Event};
use pbxkit_dialplan::FeatureAction;
use pbxkit_sip::StatusCode;
use std::time::Instant;

impl<D: Directory> Engine<D> {
    /// Answers the caller with `app` on the PBX's media, or refuses the call with
    /// the status the media gives (488 when no codec is shared, 503...).
    pub(super) fn run_application(&mut self, call: CallId, app: &Application, now: Instant) {
        let Some(offer) = self.a_offer(call) else {
            // No offer in the INVITE (a late offer): nothing to answer with.
            self.refuse(call, StatusCode::NOT_ACCEPTABLE_HERE, now);
            return;
        };
        let sdp = match self.media.application(call, app, &offer) {
            Ok(sdp) => sdp,
            Err(status) => {
                self.refuse(call, status, now);
                return;
            }
        };
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let who = c.dialed().to_owned();
        c.answer_locally(who.clone());
        self.events
            .push_back(Event::CallAnswered { call, callee: who });
        self.with_a(call, |a, now| a.answer(Some(sdp), now), now);
    }

    /// A feature code: the PBX is told, and the call waits for its command.
    pub(super) fn feature(&mut self, call: CallId, action: FeatureAction, now: Instant) {
        let wait = self.config.feature_wait;
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let user = c.caller().to_owned();
        c.wait(now + wait);
        self.events.push_back(Event::Feature { call, user, action });
    }

    /// An offer (re-INVITE, UPDATE) to a call an application runs: the PBX's media
    /// stays as answered.
    pub(super) fn application_offer(&mut self, id: super::LegId, now: Instant) {
        let Some(slot) = self.legs.get_mut(id.0) else {
            return;
        };
        let dialog = match &mut slot.leg {
            AnyLeg::Incoming(l) => l.dialog(),
            AnyLeg::Outgoing(l) => l.dialog(),
        };
        if let Some(d) = dialog {
            let _ = d.reject_offer(StatusCode::NOT_ACCEPTABLE_HERE, now);
            self.dirty.push_back(id);
        }
    }
}
