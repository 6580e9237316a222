//! Which leg an event of the transaction layer belongs to.
//!
//! ```
//! use pbxkit_sip::b2bua::{DialogKey, Routes};
//! use pbxkit_sip::transaction::{Target, Timers, TransactionLayer, TransportKind};
//! use pbxkit_sip::Message;
//! use std::time::Instant;
//!
//! let request = |method: &str, to_tag: &str, branch: &str| {
//!     Message::parse(format!(
//!         "{method} sip:1001@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
//!          From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:1001@192.0.2.10>{to_tag}\r\n\
//!          Call-ID: r-1@192.0.2.1\r\nCSeq: 2 {method}\r\nContact: <sip:alice@192.0.2.1>\r\n\r\n"
//!     ))
//! };
//! let now = Instant::now();
//! let alice = Target { addr: "192.0.2.1:5060".parse()?, transport: TransportKind::Udp };
//! let mut layer = TransactionLayer::new(Timers::default());
//! let mut routes: Routes<u32> = Routes::new();
//!
//! // An INVITE without To tag belongs to no leg: a new call.
//! layer.handle_message(request("INVITE", "", "z9hG4bKr1")?, alice, now);
//! let invite = layer.poll_event().ok_or("the INVITE")?;
//! assert_eq!(routes.route(&invite), None);
//! // Leg 7 answers it with our tag `k3j9`: its requests now carry that To tag.
//! routes.insert(DialogKey { call_id: "r-1@192.0.2.1".into(), local_tag: "k3j9".into() }, 7);
//! layer.handle_message(request("BYE", ";tag=k3j9", "z9hG4bKr2")?, alice, now);
//! let bye = layer.poll_event().ok_or("the BYE")?;
//! assert_eq!(routes.route(&bye), Some(7));
//!
//! // A terminated leg is forgotten with all its entries.
//! routes.remove(7);
//! assert_eq!(routes.route(&bye), None);
//! assert!(routes.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::Method;
use crate::transaction::{ClientTx, Event, ServerTx};
use std::collections::HashMap;
use std::hash::Hash;

/// The part of a dialog's identity that is ours: the Call-ID and our tag. Every
/// message of a leg carries it (our tag is the From tag of our requests' responses and
/// the To tag of the peer's requests), whatever tag the peer chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    /// The Call-ID.
    pub call_id: ByteStr,
    /// Our tag.
    pub local_tag: ByteStr,
}

impl DialogKey {
    fn of_request(m: &Message) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: m.call_id().ok()?.0.clone(),
            local_tag: ByteStr::from(m.to().ok()?.tag()?),
        })
    }

    fn of_response(m: &Message) -> Option<DialogKey> {
        Some(DialogKey {
            call_id: m.call_id().ok()?.0.clone(),
            local_tag: ByteStr::from(m.from().ok()?.tag()?),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Entry {
    Client(ClientTx),
    Server(ServerTx),
}

/// Legs by dialog key and by the transactions whose events name only a transaction
/// (timeouts, CANCEL, no ACK). `L` is the owner's leg id.
///
/// Requests and responses are routed by [`DialogKey`]; [`Event::Timeout`] and
/// [`Event::TransportError`] by the client transactions registered with
/// [`Routes::client`]; [`Event::Cancelled`] and [`Event::NoAck`] by the INVITE server
/// transactions registered with [`Routes::server`] (in-dialog re-INVITEs register
/// themselves when routed). [`Routes::remove`] forgets a leg and all its entries.
#[derive(Debug)]
pub struct Routes<L> {
    dialogs: HashMap<DialogKey, L>,
    clients: HashMap<ClientTx, L>,
    servers: HashMap<ServerTx, L>,
    by_leg: HashMap<L, (Vec<DialogKey>, Vec<Entry>)>,
}

impl<L: Copy + Eq + Hash> Default for Routes<L> {
    fn default() -> Self {
        Routes {
            dialogs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            by_leg: HashMap::new(),
        }
    }
}

impl<L: Copy + Eq + Hash> Routes<L> {
    /// No routes.
    pub fn new() -> Routes<L> {
        Routes::default()
    }

    /// The leg of the dialog `key` names (an attended transfer's `Replaces` names
    /// one).
    pub fn leg(&self, key: &DialogKey) -> Option<L> {
        self.dialogs.get(key).copied()
    }

    /// Routes the messages of dialog `key` to `leg`.
    pub fn insert(&mut self, key: DialogKey, leg: L) {
        self.dialogs.insert(key.clone(), leg);
        self.by_leg.entry(leg).or_default().0.push(key);
    }

    /// Routes the timeouts of a client transaction to `leg`.
    pub fn client(&mut self, tx: ClientTx, leg: L) {
        self.clients.insert(tx, leg);
        self.by_leg
            .entry(leg)
            .or_default()
            .1
            .push(Entry::Client(tx));
    }

    /// Routes CANCEL and no-ACK events of an INVITE server transaction to `leg`.
    pub fn server(&mut self, tx: ServerTx, leg: L) {
        self.servers.insert(tx, leg);
        self.by_leg
            .entry(leg)
            .or_default()
            .1
            .push(Entry::Server(tx));
    }

    /// The leg `event` belongs to; `None` for a new call (an INVITE without To tag) or
    /// a stray message.
    pub fn route(&mut self, event: &Event) -> Option<L> {
        match event {
            Event::Request { tx, request, .. } => {
                let leg = *self.dialogs.get(&DialogKey::of_request(request)?)?;
                if request.method() == Some(&Method::Invite) {
                    self.server(*tx, leg);
                }
                Some(leg)
            }
            Event::Ack { request, .. } => {
                self.dialogs.get(&DialogKey::of_request(request)?).copied()
            }
            Event::Response { tx, response } => {
                let by_dialog =
                    DialogKey::of_response(response).and_then(|k| self.dialogs.get(&k).copied());
                let leg = by_dialog.or_else(|| self.clients.get(tx).copied());
                if response.status().is_some_and(|s| !s.is_provisional()) {
                    // No timeout follows a final response.
                    self.clients.remove(tx);
                }
                leg
            }
            Event::StrayResponse { response, .. } => {
                DialogKey::of_response(response).and_then(|k| self.dialogs.get(&k).copied())
            }
            Event::Timeout { tx } | Event::TransportError { tx } => self.clients.remove(tx),
            Event::Cancelled { tx, .. } | Event::NoAck { tx } => self.servers.get(tx).copied(),
        }
    }

    /// Forgets `leg` (on [`LegEvent::Terminated`](super::LegEvent::Terminated)).
    pub fn remove(&mut self, leg: L) {
        let Some((keys, entries)) = self.by_leg.remove(&leg) else {
            return;
        };
        for key in keys {
            if self.dialogs.get(&key) == Some(&leg) {
                self.dialogs.remove(&key);
            }
        }
        for entry in entries {
            match entry {
                Entry::Client(tx) => {
                    if self.clients.get(&tx) == Some(&leg) {
                        self.clients.remove(&tx);
                    }
                }
                Entry::Server(tx) => {
                    if self.servers.get(&tx) == Some(&leg) {
                        self.servers.remove(&tx);
                    }
                }
            }
        }
    }

    /// Whether no leg is routed.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
            && self.clients.is_empty()
            && self.servers.is_empty()
            && self.by_leg.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    use super::*;
    use crate::transaction::{Target, Timers, TransactionLayer, TransportKind};

    fn parse(s: &str) -> Message {
        Message::parse(s.replace('\n', "\r\n").into_bytes()).unwrap()
    }

    fn request(method: &str, to_tag: &str, branch: &str) -> Message {
        parse(&format!(
            "{method} sip:pbx@192.0.2.10 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch={branch}\n\
             From: <sip:a@h>;tag=peer\nTo: <sip:pbx@h>{to_tag}\nCall-ID: c1\nCSeq: 2 {method}\n\
             Content-Length: 0\n\n"
        ))
    }

    #[test]
    fn events_find_their_leg_and_removal_empties_the_table() {
        let src = Target {
            addr: "192.0.2.1:5060".parse().unwrap(),
            transport: TransportKind::Udp,
        };
        let now = std::time::Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        let mut routes = Routes::new();
        routes.insert(
            DialogKey {
                call_id: ByteStr::from_static("c1"),
                local_tag: ByteStr::from_static("ours"),
            },
            7u8,
        );
        // An in-dialog re-INVITE routes by dialog and registers its transaction...
        layer.handle_message(request("INVITE", ";tag=ours", "z9hG4bK1"), src, now);
        let event = layer.poll_event().unwrap();
        let Event::Request { tx, .. } = &event else {
            panic!("{event:?}")
        };
        let tx = *tx;
        assert_eq!(routes.route(&event), Some(7));
        // ...so that its NoAck (which names only the transaction) finds the leg.
        assert_eq!(routes.route(&Event::NoAck { tx }), Some(7));
        // A new call (no To tag) and another dialog are nobody's.
        layer.handle_message(request("INVITE", "", "z9hG4bK2"), src, now);
        assert_eq!(routes.route(&layer.poll_event().unwrap()), None);
        layer.handle_message(request("BYE", ";tag=theirs", "z9hG4bK3"), src, now);
        assert_eq!(routes.route(&layer.poll_event().unwrap()), None);
        // A client transaction's timeout is routed once, then forgotten.
        let bye = request("BYE", ";tag=x", "z9hG4bK4");
        let client = layer.send_request(bye, src, now).unwrap();
        routes.client(client, 7);
        assert_eq!(routes.route(&Event::Timeout { tx: client }), Some(7));
        assert_eq!(routes.route(&Event::Timeout { tx: client }), None);
        assert!(!routes.is_empty());
        routes.remove(7);
        assert!(routes.is_empty());
        assert_eq!(routes.route(&Event::NoAck { tx }), None);
    }
}
