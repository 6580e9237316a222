//! The event subscriptions the PBX notifies (RFC 6665), on pbxkit-sip's
//! [`Notifier`]:
//!
//! - **message waiting** (`message-summary`, RFC 3842): a phone subscribes for its
//!   own user's voicemail box and is told its new and old counts at once, then at
//!   every change (a message left, heard, saved or deleted);
//! - **busy lamps** (`dialog`, RFC 4235): a phone subscribes to another user and is
//!   told, at once and at every change of that user's hint, whether it is idle
//!   (`terminated`), ringing (`early`) or on a call (`confirmed`).
//!
//! The shell authenticates each SUBSCRIBE like a REGISTER and picks what it
//! watches. This module keeps where each subscriber's NOTIFYs go (the latest
//! SUBSCRIBE's source, for phones behind NAT), each busy-lamp subscription's
//! document version, and the NOTIFYs in flight: one answered 481, or not at all,
//! ends its subscription.

use pbxkit::hints::HintStatus;
use pbxkit_sip::dialog::DialogId;
use pbxkit_sip::subscription::{Notifier, NotifierConfig, State};
use pbxkit_sip::transaction::{ClientTx, Target, TransportKind};
use pbxkit_sip::{Message, StatusCode, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

/// The message-waiting event package.
pub(crate) const MESSAGE_SUMMARY: &str = "message-summary";
/// The busy-lamp event package.
pub(crate) const DIALOG: &str = "dialog";

/// What a subscription watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Watched {
    /// A voicemail box, by number.
    Mailbox(String),
    /// A user's phones, by extension.
    User(String),
}

/// A box's counts changed (or were asked for): new and old messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) mailbox: String,
    pub(crate) new: usize,
    pub(crate) old: usize,
}

/// A NOTIFY to send: its subscription, the request, where it goes.
pub(crate) type Outgoing = (DialogId, Message, Target);

/// The subscriptions of the PBX.
pub(crate) struct Subscriptions {
    notifier: Notifier<Watched>,
    /// Where each subscription's NOTIFYs go.
    targets: HashMap<DialogId, Target>,
    /// The dialog-info document version of each busy-lamp subscription.
    versions: HashMap<DialogId, u64>,
    /// NOTIFYs waiting for their answer.
    in_flight: HashMap<ClientTx, DialogId>,
    /// Our address in Via, and our Contact.
    sent_by: SocketAddr,
    contact: Uri,
}

impl Subscriptions {
    pub(crate) fn new(sent_by: SocketAddr, contact: Uri) -> Subscriptions {
        Subscriptions {
            notifier: Notifier::new(NotifierConfig::default()),
            targets: HashMap::new(),
            versions: HashMap::new(),
            in_flight: HashMap::new(),
            sent_by,
            contact,
        }
    }

    /// Answers an authenticated SUBSCRIBE for `watched` from `source`: the
    /// response to send.
    pub(crate) fn subscribe(
        &mut self,
        request: &Message,
        watched: Watched,
        source: Target,
        now: Instant,
    ) -> Message {
        let tag = crate::ids::token();
        match self
            .notifier
            .subscribe(request, watched, &tag, &self.contact, now)
        {
            Ok(accepted) => {
                self.targets.insert(accepted.id, source);
                accepted.response
            }
            Err(refused) => *refused.response,
        }
    }

    /// The NOTIFYs of a box's new `counts`, one to each of its subscribers.
    pub(crate) fn mailbox(&mut self, counts: &Counts, now: Instant) -> Vec<Outgoing> {
        let body = summary(counts, &self.contact);
        let watched = Watched::Mailbox(counts.mailbox.clone());
        self.each(&watched, now, "application/simple-message-summary", |_| {
            body.clone()
        })
    }

    /// The NOTIFYs of `user`'s new hint `status`, one to each of its watchers.
    pub(crate) fn lamp(&mut self, user: &str, status: HintStatus, now: Instant) -> Vec<Outgoing> {
        let entity = self.entity(user);
        let watched = Watched::User(user.to_owned());
        self.each(&watched, now, "application/dialog-info+xml", |version| {
            dialog_info(user, &entity, status, version)
        })
    }

    fn each(
        &mut self,
        watched: &Watched,
        now: Instant,
        content_type: &str,
        body: impl Fn(u64) -> String,
    ) -> Vec<Outgoing> {
        let ids: Vec<DialogId> = self.notifier.watching(watched).cloned().collect();
        ids.into_iter()
            .filter_map(|id| {
                let version = self.versions.entry(id.clone()).or_insert(0);
                let text = body(*version);
                *version += 1;
                self.build(&id, content_type, &text, now)
            })
            .collect()
    }

    /// The final NOTIFYs of the subscriptions expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Outgoing> {
        self.notifier
            .handle_timeout(now)
            .into_iter()
            .filter_map(|id| self.build(&id, "", "", now))
            .collect()
    }

    fn entity(&self, user: &str) -> String {
        match self.contact.as_sip().map(|s| s.host.to_string()) {
            Some(host) => format!("sip:{user}@{host}"),
            None => format!("sip:{user}"),
        }
    }

    fn build(
        &mut self,
        id: &DialogId,
        content_type: &str,
        body: &str,
        now: Instant,
    ) -> Option<Outgoing> {
        let target = *self.targets.get(id)?;
        let transport = match target.transport {
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            _ => "UDP",
        };
        let via = format!(
            "SIP/2.0/{transport} {};branch=z9hG4bK{}",
            self.sent_by,
            crate::ids::token()
        );
        let notify = self
            .notifier
            .notify(id, State::Active, content_type, body, &via, now)?;
        if self.notifier.resource(id).is_none() {
            // Its last NOTIFY: nothing more goes there.
            self.forget(id);
        }
        Some((id.clone(), notify, target))
    }

    fn forget(&mut self, id: &DialogId) {
        self.notifier.remove(id);
        self.targets.remove(id);
        self.versions.remove(id);
    }

    /// A NOTIFY of subscription `id` is on its way as `tx`.
    pub(crate) fn sent(&mut self, id: DialogId, tx: ClientTx) {
        self.in_flight.insert(tx, id);
    }

    /// A NOTIFY's final answer: a subscriber that says the subscription does not
    /// exist (481), or does not answer, is forgotten.
    pub(crate) fn answered(&mut self, tx: ClientTx, status: Option<StatusCode>) {
        let Some(id) = self.in_flight.remove(&tx) else {
            return;
        };
        if status.is_none_or(|s| s == StatusCode::CALL_DOES_NOT_EXIST) {
            tracing::debug!(call_id = %id.call_id, ?status, "subscriber gone");
            self.forget(&id);
        }
    }

    /// Subscriptions held.
    pub(crate) fn len(&self) -> usize {
        self.notifier.len()
    }
}

/// The `application/simple-message-summary` body of `counts` (RFC 3842 §5).
fn summary(counts: &Counts, contact: &Uri) -> String {
    let account = match contact.as_sip().map(|s| s.host.to_string()) {
        Some(host) => format!("sip:{}@{host}", counts.mailbox),
        None => format!("sip:{}", counts.mailbox),
    };
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
        if counts.new > 0 { "yes" } else { "no" },
        counts.new,
        counts.old
    )
}

/// The `application/dialog-info+xml` document (RFC 4235) of `user`'s hint: one
/// dialog whose state lamps understand — `terminated` when idle (or without a
/// phone), `early` when ringing, `confirmed` on a call.
fn dialog_info(user: &str, entity: &str, status: HintStatus, version: u64) -> String {
    let (state, direction) = match status {
        HintStatus::Ringing => ("early", " direction=\"recipient\""),
        HintStatus::InUse | HintStatus::Busy | HintStatus::InUseRinging | HintStatus::OnHold => {
            ("confirmed", "")
        }
        _ => ("terminated", ""),
    };
    // Extensions are digits; the entity is ours: nothing to escape.
    format!(
        "<?xml version=\"1.0\"?>\n\
         <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{entity}\">\n\
         <dialog id=\"{user}\"{direction}><state>{state}</state></dialog>\n\
         </dialog-info>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_whether_messages_wait_and_how_many() {
        let contact = Uri::parse("sip:pbx@192.0.2.1:5060").unwrap();
        let counts = Counts {
            mailbox: "1001".into(),
            new: 2,
            old: 5,
        };
        assert_eq!(
            summary(&counts, &contact),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@192.0.2.1\r\nVoice-Message: 2/5 (0/0)\r\n"
        );
        let none = Counts { new: 0, ..counts };
        assert!(summary(&none, &contact).starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn a_lamp_shows_idle_ringing_and_on_a_call() {
        let doc = |status| dialog_info("1001", "sip:1001@pbx", status, 7);
        assert!(doc(HintStatus::Idle).contains("<state>terminated</state>"));
        assert!(doc(HintStatus::Unavailable).contains("<state>terminated</state>"));
        let ringing = doc(HintStatus::Ringing);
        assert!(
            ringing.contains("direction=\"recipient\"><state>early</state>"),
            "{ringing}"
        );
        for busy in [HintStatus::InUse, HintStatus::Busy, HintStatus::OnHold] {
            assert!(doc(busy).contains("<state>confirmed</state>"));
        }
        assert!(
            doc(HintStatus::Idle).contains("version=\"7\" state=\"full\" entity=\"sip:1001@pbx\"")
        );
    }
}
