//! Message waiting (RFC 3842): a phone SUBSCRIBEs to `message-summary` for its
//! user (authenticated like a REGISTER, its own AOR only) and is NOTIFYed with
//! its voicemail box's counts — at once, then at every change (a message left,
//! heard, saved or deleted) — until it unsubscribes or lets the subscription
//! expire. pbxkit-sip's [`Notifier`] keeps the subscriptions; this module keeps
//! where each subscriber's NOTIFYs go (the SUBSCRIBE's source, for phones behind
//! NAT) and the NOTIFYs in flight: one answered 481, or not at all, ends its
//! subscription.

use pbxkit_sip::dialog::DialogId;
use pbxkit_sip::subscription::{Notifier, NotifierConfig, State};
use pbxkit_sip::transaction::{ClientTx, Target, TransportKind};
use pbxkit_sip::{Message, StatusCode, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

/// The event package.
pub(crate) const EVENT: &str = "message-summary";

/// A box's counts changed (or were asked for): new and old messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) mailbox: String,
    pub(crate) new: usize,
    pub(crate) old: usize,
}

/// The message-waiting subscriptions of the PBX.
pub(crate) struct Mwi {
    notifier: Notifier<String>,
    /// Where each subscription's NOTIFYs go.
    targets: HashMap<DialogId, Target>,
    /// NOTIFYs waiting for their answer.
    in_flight: HashMap<ClientTx, DialogId>,
    /// Our address in Via, and our Contact.
    sent_by: SocketAddr,
    contact: Uri,
}

impl Mwi {
    pub(crate) fn new(sent_by: SocketAddr, contact: Uri) -> Mwi {
        Mwi {
            notifier: Notifier::new(NotifierConfig::default()),
            targets: HashMap::new(),
            in_flight: HashMap::new(),
            sent_by,
            contact,
        }
    }

    /// Answers an authenticated SUBSCRIBE to `mailbox` from `source`: the
    /// response to send.
    pub(crate) fn subscribe(
        &mut self,
        request: &Message,
        mailbox: &str,
        source: Target,
        now: Instant,
    ) -> Message {
        let tag = crate::ids::token();
        match self
            .notifier
            .subscribe(request, mailbox.to_owned(), &tag, &self.contact, now)
        {
            Ok(accepted) => {
                self.targets.insert(accepted.id, source);
                accepted.response
            }
            Err(refused) => *refused.response,
        }
    }

    /// The NOTIFYs of `counts`' box: one to each of its subscribers, with where
    /// to send it.
    pub(crate) fn notify(
        &mut self,
        counts: &Counts,
        now: Instant,
    ) -> Vec<(DialogId, Message, Target)> {
        let body = body(counts, &self.contact);
        let ids: Vec<DialogId> = self.notifier.watching(&counts.mailbox).cloned().collect();
        ids.into_iter()
            .filter_map(|id| self.build(&id, State::Active, &body, now))
            .collect()
    }

    /// The final NOTIFYs of the subscriptions expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(DialogId, Message, Target)> {
        self.notifier
            .handle_timeout(now)
            .into_iter()
            .filter_map(|id| self.build(&id, State::Active, "", now))
            .collect()
    }

    fn build(
        &mut self,
        id: &DialogId,
        state: State,
        body: &str,
        now: Instant,
    ) -> Option<(DialogId, Message, Target)> {
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
        let notify = self.notifier.notify(
            id,
            state,
            "application/simple-message-summary",
            body,
            &via,
            now,
        )?;
        if self.notifier.resource(id).is_none() {
            // Its last NOTIFY: nothing more goes there.
            self.targets.remove(id);
        }
        Some((id.clone(), notify, target))
    }

    /// A NOTIFY of subscription `id` is on its way as `tx`.
    pub(crate) fn sent(&mut self, id: DialogId, tx: ClientTx) {
        self.in_flight.insert(tx, id);
    }

    /// A NOTIFY's final answer: a subscriber that says the subscription does not
    /// exist (481), or does not answer, is forgotten. `false` when `tx` was not one
    /// of ours.
    pub(crate) fn answered(&mut self, tx: ClientTx, status: Option<StatusCode>) -> bool {
        let Some(id) = self.in_flight.remove(&tx) else {
            return false;
        };
        if status.is_none_or(|s| s == StatusCode::CALL_DOES_NOT_EXIST) {
            tracing::debug!(call_id = %id.call_id, ?status, "message-waiting subscriber gone");
            self.notifier.remove(&id);
            self.targets.remove(&id);
        }
        true
    }

    /// Subscriptions held.
    pub(crate) fn len(&self) -> usize {
        self.notifier.len()
    }
}

/// The `application/simple-message-summary` body of `counts` (RFC 3842 §5).
fn body(counts: &Counts, contact: &Uri) -> String {
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
            body(&counts, &contact),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@192.0.2.1\r\nVoice-Message: 2/5 (0/0)\r\n"
        );
        let none = Counts { new: 0, ..counts };
        assert!(body(&none, &contact).starts_with("Messages-Waiting: no\r\n"));
    }
}
