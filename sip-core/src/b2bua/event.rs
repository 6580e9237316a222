//! What legs tell their owner.

use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::uri::Uri;
use crate::values::Replaces;
use bytes::Bytes;

/// One INVITE of an [`OutgoingLegs`](super::OutgoingLegs) set, numbered in the order
/// branches were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId(pub u16);

/// Which side ended a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We did (our BYE, our reject).
    Local,
    /// The peer did.
    Remote,
}

/// A REFER received in the dialog (RFC 3515): accept it with
/// [`Established::accept_refer`](super::Established::accept_refer) and report progress
/// with [`Established::notify_refer`](super::Established::notify_refer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refer {
    /// The Refer-To URI, its `Replaces` header removed.
    pub refer_to: Uri,
    /// The dialog to replace (attended transfer, RFC 3891), from Refer-To's `?Replaces=`.
    pub replaces: Option<Replaces>,
    /// The Referred-By value, as received.
    pub referred_by: Option<String>,
}

/// What happened on a leg.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LegEvent {
    /// A branch's callee sent 100 Trying.
    Trying {
        /// The branch.
        branch: BranchId,
    },
    /// A branch is ringing (180–189 without SDP).
    Ringing {
        /// The branch.
        branch: BranchId,
        /// The status (180 Ringing, 181, 182...).
        status: StatusCode,
    },
    /// A branch sent early media: a provisional response with SDP (one per early
    /// dialog, so possibly several per branch behind a forking proxy).
    EarlyMedia {
        /// The branch.
        branch: BranchId,
        /// The early dialog's To tag.
        to_tag: String,
        /// The SDP answer.
        sdp: Bytes,
    },
    /// A branch answered: the set is now a confirmed dialog
    /// ([`OutgoingLegs::dialog`](super::OutgoingLegs::dialog)); every other branch is
    /// being cancelled. After a late offer (an INVITE without SDP) `sdp` is the
    /// callee's offer: answer it with
    /// [`Established::ack_answer`](super::Established::ack_answer).
    Answered {
        /// The branch.
        branch: BranchId,
        /// The SDP of the 2xx.
        sdp: Option<Bytes>,
    },
    /// A branch ended without answering while the call was still ringing (its final
    /// status, 408 for no answer); later ends show in
    /// [`OutgoingLegs::branch_state`](super::OutgoingLegs::branch_state).
    BranchFailed {
        /// The branch.
        branch: BranchId,
        /// The final status.
        status: StatusCode,
    },
    /// Every branch failed, or one sent a 6xx: the best response (RFC 3261 §16.7),
    /// what the caller should get. On an incoming leg: the INVITE was refused by the
    /// leg itself (400, 420, 422), `response` `None`.
    Failed {
        /// Its status (503 already turned into 500).
        status: StatusCode,
        /// The response chosen, with the challenges of every 401/407 combined; `None`
        /// when no branch answered at all.
        response: Option<Box<Message>>,
    },
    /// The caller cancelled the INVITE (the layer answered 487).
    Cancelled {
        /// The Q.850 cause of the CANCEL's Reason, when it has one.
        cause: Option<u8>,
        /// Whether its Reason says the call was completed elsewhere.
        elsewhere: bool,
    },
    /// The 2xx we sent got no ACK within 64×T1: hang up (RFC 3261 §13.3.1.4).
    NoAck,
    /// The ACK of our 2xx came, with the SDP answer when our 2xx carried the offer.
    Confirmed {
        /// The ACK's SDP.
        sdp: Option<Bytes>,
    },
    /// The peer offers new media (re-INVITE or UPDATE): answer with
    /// [`Established::accept_offer`](super::Established::accept_offer) or
    /// [`Established::reject_offer`](super::Established::reject_offer).
    Offer {
        /// INVITE or UPDATE.
        method: Method,
        /// The offer; `None` for a re-INVITE without SDP (our answer is then an offer).
        sdp: Option<Bytes>,
    },
    /// The peer cancelled its re-INVITE before we answered it.
    OfferCancelled,
    /// Our re-INVITE or UPDATE was accepted.
    OfferAnswered {
        /// The answer.
        sdp: Option<Bytes>,
    },
    /// Our re-INVITE or UPDATE was refused (491 on glare: offer again after
    /// [`Established::glare_wait`](super::Established::glare_wait); 408 when unanswered).
    OfferRejected {
        /// The status.
        status: StatusCode,
    },
    /// The peer asks for a transfer.
    Refer(Refer),
    /// An INFO (answered 200): DTMF relays and the like.
    Info {
        /// Its Content-Type.
        content_type: Option<String>,
        /// Its body.
        body: Bytes,
    },
    /// A NOTIFY in the dialog (answered 200).
    Notify {
        /// Its Event header.
        event: Option<String>,
        /// Its body.
        body: Bytes,
    },
    /// The last NOTIFY of a REFER ([`Established::notify_refer`] with `done`) got
    /// its final response (or timed out): a transferor may be hung up now without
    /// its BYE overtaking that NOTIFY.
    ///
    /// [`Established::notify_refer`]: super::Established::notify_refer
    ReferNotified,
    /// The session timer ran out (RFC 4028 §10), or our refresh got 408/481: hang up.
    SessionExpired,
    /// The peer ended the dialog (BYE, or a BYE on the early dialog of an incoming leg).
    Ended {
        /// Who ended it.
        by: Side,
        /// The Q.850 cause of the BYE's Reason, when it has one.
        cause: Option<u8>,
    },
    /// The leg has nothing left to do: drop it and its routes. Reported once, last.
    Terminated,
}
