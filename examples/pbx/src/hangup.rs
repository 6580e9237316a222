//! Why an answered call ended, typed, with the one mapping to what the CDR says
//! (`hangup_by`) and to the Q.850 cause it carries (and the Reason header the PBX
//! puts on the BYEs it sends). Unanswered calls end with a SIP status, mapped to
//! Q.850 by [`pbxkit_sip::cause::cause_for_status`] (RFC 3398).

use pbxkit_sip::cause::{NORMAL_CLEARING, Reason};

/// Q.850 cause 102: recovery on timer expiry.
const TIMER_EXPIRY: u8 = 102;

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// Who placed the call (the A side).
    Caller,
    /// Who answered it (the B side).
    Callee,
}

/// Why an answered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    /// A party hung up (BYE), with the Q.850 cause of its Reason header (16, normal
    /// clearing, when it gave none).
    HungUp {
        /// Who.
        party: Party,
        /// The Q.850 cause.
        q850: u8,
    },
    /// An attended transfer moved the remaining party to another call.
    Transferred,
    /// A leg's session timer expired (RFC 4028): its phone is gone.
    SessionExpired,
    /// The caller never ACKed the answer (RFC 3261 §13.3.1.4).
    NoAck,
    /// The PBX ended the call: it is stopping, or an application's prompt is over
    /// or its time limit reached.
    Pbx,
}

impl HangupCause {
    /// `party` hung up normally.
    pub fn by(party: Party) -> HangupCause {
        HangupCause::HungUp {
            party,
            q850: NORMAL_CLEARING,
        }
    }

    /// What the CDR's `hangup_by` says.
    pub fn who(self) -> &'static str {
        match self {
            HangupCause::HungUp {
                party: Party::Caller,
                ..
            } => "caller",
            HangupCause::HungUp {
                party: Party::Callee,
                ..
            } => "callee",
            HangupCause::Transferred => "transfer",
            HangupCause::SessionExpired | HangupCause::NoAck => "timer",
            HangupCause::Pbx => "pbx",
        }
    }

    /// The Q.850 cause.
    pub fn q850(self) -> u8 {
        match self {
            HangupCause::HungUp { q850, .. } => q850,
            HangupCause::SessionExpired | HangupCause::NoAck => TIMER_EXPIRY,
            HangupCause::Transferred | HangupCause::Pbx => NORMAL_CLEARING,
        }
    }

    /// The Reason header for a BYE that ends a leg for this cause.
    pub fn reason(self) -> Reason {
        let text = match self {
            HangupCause::HungUp { .. } | HangupCause::Transferred | HangupCause::Pbx => {
                "Normal call clearing"
            }
            HangupCause::SessionExpired | HangupCause::NoAck => "Recovery on timer expiry",
        };
        Reason::q850(self.q850(), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_maps_to_one_party_and_one_q850_cause() {
        let cases = [
            (HangupCause::by(Party::Caller), "caller", 16),
            (
                HangupCause::HungUp {
                    party: Party::Callee,
                    q850: 17,
                },
                "callee",
                17,
            ),
            (HangupCause::Transferred, "transfer", 16),
            (HangupCause::SessionExpired, "timer", 102),
            (HangupCause::NoAck, "timer", 102),
            (HangupCause::Pbx, "pbx", 16),
        ];
        for (cause, who, q850) in cases {
            assert_eq!((cause.who(), cause.q850()), (who, q850), "{cause:?}");
            assert_eq!(cause.reason().q850_cause(), Some(q850));
        }
    }
}
