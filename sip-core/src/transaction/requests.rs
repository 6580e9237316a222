//! Requests the transaction layer builds: the ACK for a non-2xx final response
//! (RFC 3261 §17.1.1.3) and CANCEL (§9.1).
//!
//! ```
//! use pbxkit_sip::transaction::{ack_for_failure, cancel_for};
//! use pbxkit_sip::{Message, Method, StatusCode};
//!
//! let invite = Message::parse(
//!     "INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n\
//!      Max-Forwards: 70\r\nFrom: <sip:alice@atlanta.example.com>;tag=a1\r\nTo: <sip:bob@biloxi.example.com>\r\n\
//!      Call-ID: c-1@192.0.2.1\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n",
//! )?;
//! // The CANCEL matches the INVITE's transaction: same branch and CSeq number.
//! let cancel = cancel_for(&invite);
//! assert_eq!(cancel.method(), Some(&Method::Cancel));
//! assert_eq!(cancel.top_via()?.branch(), Some("z9hG4bKc1"));
//! assert_eq!((cancel.cseq()?.seq, &cancel.cseq()?.method), (5, &Method::Cancel));
//!
//! // The ACK of a 486 takes the To tag of the response.
//! let busy = Message::response_to(&invite, StatusCode::BUSY_HERE, Some("b9"));
//! let ack = ack_for_failure(&invite, &busy);
//! assert_eq!(ack.method(), Some(&Method::Ack));
//! assert_eq!(ack.top_via()?.branch(), Some("z9hG4bKc1"));
//! assert_eq!(ack.to()?.tag(), Some("b9"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;

/// Copies the request line of `request` into a new request with `method`, with the
/// Call-ID, From, Max-Forwards and Route headers, the top Via only, and
/// `CSeq: <same number> <method>`.
fn derived(request: &Message, method: Method) -> Message {
    let uri = request.request_uri().cloned().unwrap_or_else(|| {
        // A request always has a Request-URI; this is only reached with a response.
        crate::uri::Uri::Other(ByteStr::from_static("sip:invalid"))
    });
    let mut m = Message::request(method.clone(), uri);
    let seq = request.cseq().map(|c| c.seq).unwrap_or(0);
    let headers = m.headers_mut();
    if let Ok(via) = request.top_via() {
        headers.push(HeaderName::Via, via.to_string());
    }
    for name in [
        HeaderName::MaxForwards,
        HeaderName::From,
        HeaderName::CallId,
    ] {
        if let Some(h) = request.headers().first(&name) {
            headers.push(name, h.to_bytestr());
        }
    }
    headers.push(HeaderName::CSeq, format!("{seq} {method}"));
    for h in request.headers().all(&HeaderName::Route) {
        headers.push(HeaderName::Route, h.to_bytestr());
    }
    m
}

/// The ACK a client INVITE transaction sends for a 300-699 response: same branch, To
/// from the response (with its tag).
pub fn ack_for_failure(invite: &Message, response: &Message) -> Message {
    let mut ack = derived(invite, Method::Ack);
    if let Some(to) = response.headers().first(&HeaderName::To) {
        let to = to.to_bytestr();
        let headers = ack.headers_mut();
        headers.push(HeaderName::To, to);
        headers.push(HeaderName::ContentLength, ByteStr::from_static("0"));
    }
    ack
}

/// A CANCEL for `invite`: same Request-URI, top Via (branch), Call-ID, From, To and
/// CSeq number, as RFC 3261 §9.1 requires so that it matches the INVITE transaction.
pub fn cancel_for(invite: &Message) -> Message {
    let mut cancel = derived(invite, Method::Cancel);
    if let Some(to) = invite.headers().first(&HeaderName::To) {
        let to = to.to_bytestr();
        let headers = cancel.headers_mut();
        headers.push(HeaderName::To, to);
        headers.push(HeaderName::ContentLength, ByteStr::from_static("0"));
    }
    cancel
}
