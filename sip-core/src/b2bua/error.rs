//! Why a leg refused a command.

/// A command a leg can't carry out in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LegError {
    /// The INVITE was already answered finally (2xx or failure).
    #[error("the INVITE was already answered")]
    AlreadyAnswered,
    /// The leg has no confirmed dialog yet.
    #[error("no confirmed dialog")]
    NotConfirmed,
    /// The dialog (or the call, before an answer) is ending or has ended.
    #[error("the dialog is ending")]
    Ending,
    /// An offer/answer exchange is in progress (RFC 3261 §14.1: wait for it).
    #[error("an offer is pending")]
    OfferPending,
    /// There is no received offer (or REFER) to answer.
    #[error("nothing to answer")]
    NothingPending,
    /// The status is not allowed here (e.g. a 1xx to reject, a 2xx to refuse).
    #[error("status {0} not allowed here")]
    BadStatus(u16),
    /// The set of branches has an answer or has failed: no new branch.
    #[error("the call is no longer ringing")]
    NotRinging,
    /// No such branch.
    #[error("no such branch")]
    UnknownBranch,
    /// More branches than a [`BranchId`](super::BranchId) counts.
    #[error("too many branches")]
    TooManyBranches,
}
