//! The notifier side of SIP event subscriptions (RFC 6665), sans-IO: what a PBX
//! needs to tell phones about message waiting (RFC 3842 `message-summary`), busy
//! lamps (RFC 4235 `dialog`) or presence.
//!
//! A [`Notifier`] keeps the subscriptions it accepted, each a UAS [`Dialog`] with
//! the resource it watches (a key the caller chooses: a mailbox, a user) and its
//! expiry. The caller authenticates the SUBSCRIBE and picks the resource, then:
//!
//! - [`Notifier::subscribe`] answers it: a new subscription (our To tag), a refresh
//!   of one (same dialog), or an unsubscription (`Expires: 0`). Expiries are bounded
//!   (423 with Min-Expires below the minimum, the maximum granted above it), a
//!   refresh of an unknown dialog gets 481, and a full table 503 — each
//!   subscription is also bounded per resource, so one phone cannot fill it;
//! - [`Notifier::notify`] builds the NOTIFY of a subscription with the state and
//!   the body the caller gives (send one at once after each accepted SUBSCRIBE, as
//!   §4.2.1.2 asks, and one on every change of the resource);
//! - [`Notifier::handle_timeout`] ends expired subscriptions, each with its final
//!   NOTIFY (`Subscription-State: terminated;reason=timeout`);
//! - a NOTIFY answered 481 (or not answered) means the subscriber is gone:
//!   [`Notifier::remove`].
//!
//! ```
//! use pbxkit_sip::subscription::{Notifier, NotifierConfig, State};
//! use pbxkit_sip::{Message, Method, StatusCode, Uri};
//! use std::time::{Duration, Instant};
//!
//! let subscribe = Message::parse(
//!     "SUBSCRIBE sip:1001@pbx.example SIP/2.0\r\n\
//!      Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKsub1\r\nMax-Forwards: 70\r\n\
//!      From: <sip:1001@pbx.example>;tag=phone-1\r\nTo: <sip:1001@pbx.example>\r\n\
//!      Call-ID: mwi-1@192.0.2.7\r\nCSeq: 1 SUBSCRIBE\r\n\
//!      Contact: <sip:1001@192.0.2.7:5060>\r\nEvent: message-summary\r\n\
//!      Expires: 3600\r\nContent-Length: 0\r\n\r\n",
//! )?;
//! let now = Instant::now();
//! let mut notifier = Notifier::new(NotifierConfig::default());
//! let contact = Uri::parse("sip:pbx@192.0.2.1:5060")?;
//! let accepted = notifier.subscribe(&subscribe, "1001".to_owned(), "tag-1", &contact, now)?;
//! assert_eq!(accepted.response.status(), Some(StatusCode::OK));
//! assert_eq!(accepted.expires, Duration::from_secs(3600));
//!
//! // The first NOTIFY, with the mailbox's state.
//! let body = "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n";
//! let notify = notifier
//!     .notify(&accepted.id, State::Active, "application/simple-message-summary", body,
//!         "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKn1", now)
//!     .expect("a subscription");
//! assert_eq!(notify.method(), Some(&Method::Notify));
//! assert_eq!(notify.headers().first(&pbxkit_sip::HeaderName::SubscriptionState)
//!     .map(|h| h.value.to_string()).as_deref(), Some("active;expires=3600"));
//! assert_eq!(notifier.watching(&"1001".to_owned()).count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::dialog::{Dialog, DialogId};
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::uri::Uri;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The bounds a [`Notifier`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Shorter expiries are refused (423 with `Min-Expires`).
    pub min_expires: Duration,
    /// Longer ones are cut to this.
    pub max_expires: Duration,
    /// The expiry of a SUBSCRIBE without `Expires` (the event package's default:
    /// 3600 s for message-summary and dialog).
    pub default_expires: Duration,
    /// Subscriptions at most (503 beyond).
    pub max_subscriptions: usize,
    /// Subscriptions to one resource at most (503 beyond).
    pub max_per_resource: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(7200),
            default_expires: Duration::from_secs(3600),
            max_subscriptions: 100_000,
            max_per_resource: 32,
        }
    }
}

/// A subscription's state, as its NOTIFY says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Active, with the time left.
    Active,
    /// Over: the subscriber unsubscribed, or it expired (`reason=timeout`), or the
    /// resource is gone (`reason=noresource`).
    Terminated(Reason),
}

/// Why a subscription ended (RFC 6665 §4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// It was not refreshed in time.
    Timeout,
    /// The subscriber asked (`Expires: 0`).
    Unsubscribed,
    /// The resource no longer exists.
    NoResource,
}

/// A SUBSCRIBE accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The subscription (its dialog).
    pub id: DialogId,
    /// The 200 to send.
    pub response: Message,
    /// The expiry granted; zero for an unsubscription.
    pub expires: Duration,
    /// Whether it made a new subscription (not a refresh).
    pub new: bool,
}

/// A SUBSCRIBE refused: the response to send.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The response (400, 423 with Min-Expires, 481, 503).
    pub response: Box<Message>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.response.status() {
            Some(s) => write!(f, "SUBSCRIBE refused with {}", s.as_u16()),
            None => f.write_str("SUBSCRIBE refused"),
        }
    }
}

impl std::error::Error for Refused {}

#[derive(Debug, Clone)]
struct Subscription<K> {
    dialog: Dialog,
    /// The SUBSCRIBE's Event header (package and id), repeated in each NOTIFY.
    event: ByteStr,
    resource: K,
    expires_at: Instant,
    /// Unsubscribed: removed once its final NOTIFY is built.
    ending: bool,
}

/// The subscriptions a notifier accepted (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Notifier<K> {
    config: NotifierConfig,
    subscriptions: HashMap<DialogId, Subscription<K>>,
    per_resource: HashMap<K, usize>,
}

impl<K: Clone + Eq + Hash> Notifier<K> {
    /// An empty notifier.
    pub fn new(config: NotifierConfig) -> Notifier<K> {
        Notifier {
            config,
            subscriptions: HashMap::new(),
            per_resource: HashMap::new(),
        }
    }

    /// Subscriptions held.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// The subscriptions to `resource`.
    pub fn watching<'a>(&'a self, resource: &'a K) -> impl Iterator<Item = &'a DialogId> + 'a {
        self.subscriptions
            .iter()
            .filter(move |(_, s)| s.resource == *resource)
            .map(|(id, _)| id)
    }

    /// The resource a subscription watches.
    pub fn resource(&self, id: &DialogId) -> Option<&K> {
        self.subscriptions.get(id).map(|s| &s.resource)
    }

    /// Answers a SUBSCRIBE (authenticated, its event package checked by the
    /// caller) to `resource`: `local_tag` is our To tag for a new subscription,
    /// `contact` our Contact.
    ///
    /// # Errors
    ///
    /// [`Refused`] with the response to send: 400 (no From tag, Call-ID or
    /// Contact), 423 (an expiry below the minimum), 481 (a refresh of a
    /// subscription we do not have), 503 (too many subscriptions).
    pub fn subscribe(
        &mut self,
        request: &Message,
        resource: K,
        local_tag: &str,
        contact: &Uri,
        now: Instant,
    ) -> Result<Accepted, Refused> {
        let refuse = |code: StatusCode| Refused {
            response: Box::new(Message::response_to(request, code, None)),
        };
        let expires = match request.headers().first(&HeaderName::Expires) {
            None => self.config.default_expires,
            Some(h) => match h.value.trim().parse::<u64>() {
                Ok(s) => Duration::from_secs(s),
                Err(_) => return Err(refuse(StatusCode::BAD_REQUEST)),
            },
        };
        if !expires.is_zero() && expires < self.config.min_expires {
            let mut response = Message::response_to(request, StatusCode::INTERVAL_TOO_BRIEF, None);
            response.headers_mut().push(
                HeaderName::MinExpires,
                self.config.min_expires.as_secs().to_string(),
            );
            return Err(Refused {
                response: Box::new(response),
            });
        }
        let granted = expires.min(self.config.max_expires);
        let to_tag = request.to().ok().and_then(|t| t.tag().map(str::to_owned));
        if let Some(tag) = to_tag {
            // A refresh (or unsubscription) in an existing dialog.
            let id =
                DialogId::of_request(request).ok_or_else(|| refuse(StatusCode::BAD_REQUEST))?;
            let Some(sub) = self.subscriptions.get_mut(&id) else {
                return Err(refuse(StatusCode::CALL_DOES_NOT_EXIST));
            };
            if sub.dialog.handle_request(request).is_err() {
                return Err(refuse(StatusCode::SERVER_INTERNAL_ERROR));
            }
            sub.expires_at = now + granted;
            sub.ending = granted.is_zero();
            let response = ok(request, &tag, contact, granted);
            return Ok(Accepted {
                id,
                response,
                expires: granted,
                new: false,
            });
        }
        if self.subscriptions.len() >= self.config.max_subscriptions
            || self.per_resource.get(&resource).copied().unwrap_or(0)
                >= self.config.max_per_resource
        {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE));
        }
        let event = request
            .headers()
            .first(&HeaderName::Event)
            .map(|h| ByteStr::from(h.value.trim().to_owned()))
            .filter(|e| !e.is_empty())
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST))?;
        let response = ok(request, local_tag, contact, granted);
        let dialog =
            Dialog::uas(request, &response).map_err(|_| refuse(StatusCode::BAD_REQUEST))?;
        let id = dialog.id.clone();
        // A fetch (Expires: 0) gets its one NOTIFY and ends (§4.4.3).
        *self.per_resource.entry(resource.clone()).or_insert(0) += 1;
        self.subscriptions.insert(
            id.clone(),
            Subscription {
                dialog,
                event,
                resource,
                expires_at: now + granted,
                ending: granted.is_zero(),
            },
        );
        Ok(Accepted {
            id,
            response,
            expires: granted,
            new: true,
        })
    }

    /// The NOTIFY of subscription `id` with `body` (of `content_type`) and
    /// `state`; `via` is our Via with a fresh branch. A subscription being
    /// unsubscribed or expired says `terminated` whatever `state` is, and is
    /// removed. `None` for a subscription we do not have.
    pub fn notify(
        &mut self,
        id: &DialogId,
        state: State,
        content_type: &str,
        body: &str,
        via: &str,
        now: Instant,
    ) -> Option<Message> {
        let sub = self.subscriptions.get_mut(id)?;
        let state = match state {
            State::Active if sub.ending => State::Terminated(Reason::Unsubscribed),
            State::Active if sub.expires_at <= now => State::Terminated(Reason::Timeout),
            s => s,
        };
        let mut notify = sub.dialog.request(Method::Notify, via, None);
        let subscription_state = match state {
            State::Active => {
                let left = sub.expires_at.saturating_duration_since(now).as_secs();
                format!("active;expires={left}")
            }
            State::Terminated(reason) => format!(
                "terminated;reason={}",
                match reason {
                    Reason::Timeout => "timeout",
                    // RFC 6665 has no reason for the subscriber's own ending.
                    Reason::Unsubscribed => "timeout",
                    Reason::NoResource => "noresource",
                }
            ),
        };
        let h = notify.headers_mut();
        h.push(HeaderName::Event, sub.event.to_string());
        h.push(HeaderName::SubscriptionState, subscription_state);
        if !body.is_empty() {
            h.push(HeaderName::ContentType, content_type.to_owned());
        }
        h.set(HeaderName::ContentLength, body.len().to_string());
        notify.body = bytes::Bytes::copy_from_slice(body.as_bytes());
        if matches!(state, State::Terminated(_)) {
            self.remove(id);
        }
        Some(notify)
    }

    /// Forgets subscription `id` (its subscriber answered a NOTIFY with 481, or
    /// not at all).
    pub fn remove(&mut self, id: &DialogId) {
        if let Some(sub) = self.subscriptions.remove(id)
            && let Some(n) = self.per_resource.get_mut(&sub.resource)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_resource.remove(&sub.resource);
            }
        }
    }

    /// When the next subscription expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subscriptions.values().map(|s| s.expires_at).min()
    }

    /// The subscriptions expired at `now`, each to be sent its final NOTIFY
    /// ([`Notifier::notify`] says `terminated;reason=timeout` for them).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<DialogId> {
        self.subscriptions
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Our 200 to a SUBSCRIBE: our tag, Contact and the expiry granted.
fn ok(request: &Message, tag: &str, contact: &Uri, expires: Duration) -> Message {
    let mut response = Message::response_to(request, StatusCode::OK, Some(tag));
    let h = response.headers_mut();
    h.push(HeaderName::Contact, format!("<{contact}>"));
    h.push(HeaderName::Expires, expires.as_secs().to_string());
    response
}
