//! Parallel forking: every contact of the callee is rung by its own task, which owns
//! that branch's INVITE transaction. The call sees the branches' responses on one
//! channel and decides; a branch told to stop CANCELs (once it may: RFC 3261 §9.1
//! wants a provisional response first) and hangs up by itself if the callee answers
//! anyway, so that no phone is left off-hook on a call nobody is in.

use crate::call::via;
use pbxkit_sip::cause::Reason;
use pbxkit_sip::dialog::Dialog;
use pbxkit_sip::endpoint::{ClientEvent, EndpointHandle};
use pbxkit_sip::transaction::{Target, cancel_for};
use pbxkit_sip::{HeaderName, Message, Method};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the call tells its branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep ringing.
    Ringing,
    /// Branch `n` answered: every other branch stops.
    AllBut(usize),
    /// The call is given up: every branch stops.
    All,
}

/// What a branch tells the call.
#[derive(Debug)]
pub(crate) enum BranchEvent {
    /// A response (provisional or final) on branch `n`.
    Response(usize, Box<Message>),
    /// A branch got no answer at all (timeout or transport error).
    Failed,
}

/// Rings one contact until a final response, stopping when `stop` says so.
pub(crate) async fn run(
    branch: usize,
    endpoint: EndpointHandle,
    invite: Message,
    target: Target,
    events: mpsc::Sender<BranchEvent>,
    mut stop: watch::Receiver<Stop>,
) {
    let Ok(mut tx) = endpoint.send_request(invite.clone(), target).await else {
        let _ = events.send(BranchEvent::Failed).await;
        return;
    };
    let told_to_stop = |s: Stop| match s {
        Stop::Ringing => false,
        Stop::AllBut(winner) => winner != branch,
        Stop::All => true,
    };
    let mut stopped = told_to_stop(*stop.borrow());
    let (mut provisional, mut cancel_sent) = (false, false);
    loop {
        tokio::select! {
            event = tx.next() => {
                let Some(ClientEvent::Response(response)) = event else {
                    if !stopped {
                        let _ = events.send(BranchEvent::Failed).await;
                    }
                    return;
                };
                let Some(code) = response.status() else {
                    continue;
                };
                if code.is_provisional() {
                    provisional = true;
                    if stopped && !cancel_sent {
                        cancel_sent = true;
                        let why = *stop.borrow();
                        cancel(&endpoint, &invite, target, why).await;
                    } else if !stopped {
                        let _ = events.send(BranchEvent::Response(branch, Box::new(response))).await;
                    }
                    continue;
                }
                if code.is_success() {
                    let answered = if stopped {
                        Some(response)
                    } else {
                        // The call has gone (it returned): nobody will take this answer.
                        events
                            .send(BranchEvent::Response(branch, Box::new(response)))
                            .await
                            .err()
                            .and_then(|e| match e.0 {
                                BranchEvent::Response(_, r) => Some(*r),
                                BranchEvent::Failed => None,
                            })
                    };
                    if let Some(response) = answered {
                        hang_up(&endpoint, &invite, &response, target).await;
                    }
                } else if !stopped {
                    let _ = events.send(BranchEvent::Response(branch, Box::new(response))).await;
                }
                return;
            }
            changed = stop.changed(), if !stopped => {
                // A dropped sender means the call is gone: stop as well.
                stopped = changed.is_err() || told_to_stop(*stop.borrow());
                if stopped && provisional && !cancel_sent {
                    cancel_sent = true;
                    let why = *stop.borrow();
                    cancel(&endpoint, &invite, target, why).await;
                }
            }
        }
    }
}

/// CANCELs a branch; when another branch answered, with the Reason that tells the
/// phone the call was answered elsewhere, so that it does not list a missed call.
async fn cancel(endpoint: &EndpointHandle, invite: &Message, target: Target, why: Stop) {
    let mut cancel = cancel_for(invite);
    if matches!(why, Stop::AllBut(_)) {
        cancel
            .headers_mut()
            .push(HeaderName::Reason, Reason::answered_elsewhere().to_string());
    }
    let _ = endpoint.send_request(cancel, target).await;
}

/// ACKs a 2xx nobody wants and hangs that dialog up.
pub(crate) async fn hang_up(
    endpoint: &EndpointHandle,
    invite: &Message,
    response: &Message,
    target: Target,
) {
    let Ok(mut dialog) = Dialog::uac(invite, response) else {
        return;
    };
    let seq = invite.cseq().map_or(1, |c| c.seq);
    endpoint
        .send_ack(dialog.ack(seq, &via(endpoint, target)), target)
        .await;
    let bye = dialog.request(Method::Bye, &via(endpoint, target), None);
    if let Ok(mut tx) = endpoint.send_request(bye, target).await {
        let _ = tokio::time::timeout(Duration::from_secs(5), tx.final_response()).await;
    }
}

/// After branch `winner` answered: hangs up any other branch whose 2xx was already on
/// its way to the call.
pub(crate) async fn hang_up_late(
    winner: usize,
    endpoint: EndpointHandle,
    branches: Vec<(Message, Target)>,
    mut events: mpsc::Receiver<BranchEvent>,
) {
    while let Some(event) = events.recv().await {
        if let BranchEvent::Response(i, response) = event
            && i != winner
            && response.status().is_some_and(|c| c.is_success())
            && let Some((invite, target)) = branches.get(i)
        {
            hang_up(&endpoint, invite, &response, *target).await;
        }
    }
}
