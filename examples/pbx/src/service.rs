//! The PBX service: one loop that owns the SIP endpoint and hands each request to the
//! registrar, to a call's task, or answers it itself.

use crate::ban::{Banned, Bans};
use crate::call::{self, CallInput, CallSetup};
use crate::cdr::Cdr;
use crate::config::Config;
use crate::ids;
use crate::media::PortPool;
use crate::store::FileStore;
use pbxkit_sip::digest::{AuthError, DigestServer};
use pbxkit_sip::endpoint::{Endpoint, EndpointHandle, Incoming, ServerRequest};
use pbxkit_sip::registrar::Registrar;
use pbxkit_sip::transaction::{ServerTx, Target, TransportKind};
use pbxkit_sip::{ByteStr, HeaderName, Message, Method, StatusCode, Transport, Uri};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Seconds since the Unix epoch: registrations and nonces are wall-clock data.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The registrar, shared with call tasks (they look contacts up as the dialplan
/// sends the call from user to user). Locked briefly, never across an await.
pub(crate) type SharedRegistrar = Arc<std::sync::Mutex<Registrar<FileStore>>>;

/// A dialog as the main loop routes it: Call-ID and our tag.
pub(crate) type DialogKey = (String, String);

/// What call tasks tell the main loop.
#[derive(Debug)]
pub(crate) enum Notice {
    /// Route requests of this dialog (and the INVITE transaction's CANCEL) to a call.
    Route {
        keys: Vec<DialogKey>,
        tx: Option<ServerTx>,
        inputs: mpsc::Sender<CallInput>,
    },
    /// The call is over: forget its routes.
    Ended {
        keys: Vec<DialogKey>,
        tx: Option<ServerTx>,
    },
    /// A member answered a call of a group (`ended: None`), or ended one.
    Group {
        group: String,
        member: String,
        ended: Option<jiff::Timestamp>,
    },
    /// An attended transfer replaces the dialog with Call-ID `call_id` and one of
    /// `tags` as ours: ask its call to hand its other side over through `reply`.
    Replace {
        call_id: String,
        tags: [String; 2],
        reply: tokio::sync::oneshot::Sender<call::Handover>,
    },
}

/// A new configuration to run on (SIGHUP), compiled and checked: calls in progress
/// keep the one they started with, new calls take this one.
#[derive(Debug)]
pub(crate) struct Reload {
    pub(crate) config: Arc<Config>,
    pub(crate) dialplan: Arc<pbxkit_dialplan::Dialplan>,
}

/// What the service needs besides the endpoint and the configuration.
pub(crate) struct Parts {
    pub(crate) store: FileStore,
    pub(crate) cdr: Cdr,
    pub(crate) users: crate::live::Users,
    pub(crate) bus: crate::events::Bus,
    pub(crate) reloads: mpsc::Receiver<Reload>,
}

/// How many inputs wait for a call before more are refused (requests get 503 and
/// are retried by the phone): a call that is slow to read them must not make the
/// service loop wait.
pub(crate) const CALL_QUEUE: usize = 64;

struct Service {
    config: Arc<Config>,
    /// Users' live services, shared with every call.
    users: crate::live::Users,
    bus: crate::events::Bus,
    endpoint: EndpointHandle,
    /// Digest authentication of INVITE and REGISTER.
    auth: pbxkit::auth::Authenticator,
    registrar: SharedRegistrar,
    dialplan: Arc<pbxkit_dialplan::Dialplan>,
    /// Addresses of enabled trunks (resolved at start-up) and their names.
    trunk_addrs: HashMap<std::net::IpAddr, String>,
    /// Which trunks answer their OPTIONS.
    trunk_states: Arc<crate::trunks::TrunkStates>,
    /// Calls in progress per user and trunk, shared with every call.
    in_use: crate::inuse::InUse,
    /// What the group strategies remember.
    groups: Arc<crate::groups::History>,
    dialogs: HashMap<DialogKey, mpsc::Sender<CallInput>>,
    invites: HashMap<ServerTx, mpsc::Sender<CallInput>>,
    notices: mpsc::Sender<Notice>,
    ports: Arc<PortPool>,
    cdr: Cdr,
    bans: Bans,
    /// Set on SIGTERM: new calls are refused while the current ones end.
    stopping: bool,
    /// Cloned into every call task: when all clones are gone, every call has finished
    /// (its CDR included).
    alive: Option<mpsc::Sender<()>>,
    /// Calls in progress and calls since start, for the periodic statistics line.
    calls_active: Arc<std::sync::atomic::AtomicUsize>,
    calls_total: usize,
}

/// How often the PBX logs its counters.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// How long calls get to end cleanly at shutdown before the PBX exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the PBX on a bound endpoint until `shutdown` completes, then ends the calls
/// in progress (BYE or CANCEL on every leg, within [`SHUTDOWN_GRACE`]).
pub(crate) async fn run(
    config: Arc<Config>,
    dialplan: Arc<pbxkit_dialplan::Dialplan>,
    mut endpoint: Endpoint,
    parts: Parts,
    shutdown: impl Future<Output = ()>,
) {
    let Parts {
        store,
        cdr,
        users,
        bus,
        mut reloads,
    } = parts;
    let registrar = Registrar::new(config.registrar.bounds(), store);
    let (notices, mut notice_rx) = mpsc::channel(1024);
    let endpoint_listen = endpoint.local_addr();
    let config_rtp = (config.rtp.port_min, config.rtp.port_max);
    let bans = Bans::new(config.security.ban_policy());
    let mut trunk_addrs = HashMap::new();
    for trunk in config.trunks.iter().filter(|t| t.enabled) {
        match tokio::net::lookup_host((trunk.host.as_str(), trunk.port)).await {
            Ok(addrs) => {
                for addr in addrs {
                    trunk_addrs.insert(addr.ip(), trunk.name.clone());
                }
            }
            Err(e) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.host, error = %e, "trunk host does not resolve")
            }
        }
    }
    let trunk_states = Arc::new(crate::trunks::TrunkStates::new(&config.trunks));
    // Registrations and qualify loops end with the service (aborted on drop).
    let mut trunk_tasks = Vec::new();
    for trunk in config.trunks.iter().filter(|t| t.enabled) {
        if trunk.register {
            trunk_tasks.push(AbortOnDrop(tokio::spawn(crate::trunks::register(
                trunk.clone(),
                endpoint.handle(),
            ))));
        }
        if trunk.qualify > 0 {
            trunk_tasks.push(AbortOnDrop(tokio::spawn(crate::trunks::qualify(
                trunk.clone(),
                Duration::from_secs(trunk.qualify),
                endpoint.handle(),
                trunk_states.clone(),
            ))));
        }
    }
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let secret = config.sip.nonce_key();
    let _ = NODE_ID.set(config.pbx.node_id.clone());
    let mut service = Service {
        users,
        bus,
        calls_active: Arc::default(),
        calls_total: 0,
        alive: Some(alive),
        cdr,
        bans,
        stopping: false,
        // Nonces issued before this start may have been used unseen: stale, not replayable.
        auth: pbxkit::auth::Authenticator::new(
            &config.sip.realm,
            DigestServer::new(&config.sip.realm, &secret, 300)
                .with_max_tracked(config.sip.nonce_max_tracked)
                .remembering_since(unix_now()),
            config.sip.digest_algorithms(),
        ),
        endpoint: endpoint.handle(),
        config,
        registrar: Arc::new(std::sync::Mutex::new(registrar)),
        dialplan,
        trunk_addrs,
        trunk_states,
        in_use: crate::inuse::InUse::default(),
        groups: Arc::default(),
        dialogs: HashMap::new(),
        invites: HashMap::new(),
        notices,
        ports: Arc::new(PortPool::new(
            ip_of(&endpoint_listen),
            config_rtp.0,
            config_rtp.1,
        )),
    };
    // The operator's view of the bus: every event at debug level.
    let mut watched = service.bus.subscribe();
    let _log = AbortOnDrop(tokio::spawn(async move {
        loop {
            match watched.recv().await {
                Ok(event) => tracing::debug!(?event, "event"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event log behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }));
    let mut expiry = tokio::time::interval(Duration::from_secs(10));
    let mut stats = tokio::time::interval(STATS_EVERY);
    let mut calls_at_last_stats = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Notices first: a call registers its dialogs before it sends anything, so
            // a request in those dialogs (a fast phone's ACK or REFER) must not be
            // looked up before the registration is applied.
            biased;
            Some(notice) = notice_rx.recv() => service.notice(notice),
            Some(reload) = reloads.recv() => service.reload(reload),
            incoming = endpoint.next() => match incoming {
                Some(incoming) => service.incoming(incoming).await,
                None => break,
            },
            _ = expiry.tick() => {
                let gone = service
                    .registrar
                    .lock()
                    .map_or(0, |mut r| r.expire(unix_now()));
                if gone > 0 {
                    tracing::info!(bindings = gone, "registrations expired");
                }
                service.bans.forget_expired(Instant::now());
            }
            _ = stats.tick() => {
                let registrations = service.registrar.lock().map_or(0, |r| r.store().bindings());
                let new_calls = service.calls_total - calls_at_last_stats;
                let (banned_sources, banned_pairs) = service.bans.banned_count(Instant::now());
                calls_at_last_stats = service.calls_total;
                tracing::info!(
                    calls_active = service.calls_active.load(std::sync::atomic::Ordering::Relaxed),
                    calls_total = service.calls_total,
                    cps = format!("{:.1}", new_calls as f64 / STATS_EVERY.as_secs_f64()),
                    registrations,
                    banned_sources,
                    banned_pairs,
                    "stats"
                );
            }
            () = &mut shutdown => break,
        }
    }
    // Stopping: refuse new calls, tell each call to end, and keep serving (their BYEs
    // and CANCELs need the endpoint) until they have or the grace period is over.
    service.stopping = true;
    let mut calls: Vec<mpsc::Sender<CallInput>> = Vec::new();
    for inputs in service.dialogs.values().chain(service.invites.values()) {
        if !calls.iter().any(|c| c.same_channel(inputs)) {
            calls.push(inputs.clone());
        }
    }
    tracing::info!(calls = calls.len(), "stopping: ending calls");
    for call in calls {
        let _ = call.send(CallInput::Shutdown).await;
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let grace = tokio::time::sleep_until(deadline);
    tokio::pin!(grace);
    while !(service.dialogs.is_empty() && service.invites.is_empty()) {
        tokio::select! {
            // Notices first: a call registers its dialogs before it sends anything, so
            // a request in those dialogs (a fast phone's ACK or REFER) must not be
            // looked up before the registration is applied.
            biased;
            Some(notice) = notice_rx.recv() => service.notice(notice),
            incoming = endpoint.next() => match incoming {
                Some(incoming) => service.incoming(incoming).await,
                None => break,
            },
            () = &mut grace => {
                tracing::warn!(calls = service.dialogs.len(), "calls still up at the end of the grace period");
                break;
            }
        }
    }
    // The tasks finish after their last notice: wait for them (and their CDRs).
    drop(service.alive.take());
    let _ = tokio::time::timeout_at(deadline, all_done.recv()).await;
    drop(trunk_tasks);
    endpoint.shutdown().await;
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Service {
    /// The live state a new call routes with.
    fn live(&self) -> crate::groups::Live {
        crate::groups::Live {
            in_use: self.in_use.clone(),
            groups: self.groups.clone(),
            random: ids::random_u64(),
            users: Some(self.users.clone()),
        }
    }

    /// Runs on a new configuration from now on. What is bound at start-up (listen
    /// addresses, RTP ports, data directory, realm, registrar bounds, trunks'
    /// registrations) keeps its old value until a restart, and the log says so.
    fn reload(&mut self, reload: Reload) {
        let (old, new) = (&self.config, &reload.config);
        let restart_only = [
            ("sip", format!("{:?}", old.sip) != format!("{:?}", new.sip)),
            ("rtp", format!("{:?}", old.rtp) != format!("{:?}", new.rtp)),
            (
                "registrar",
                format!("{:?}", old.registrar) != format!("{:?}", new.registrar),
            ),
            ("data_dir", old.pbx.data_dir != new.pbx.data_dir),
            (
                "trunks",
                format!("{:?}", old.trunks) != format!("{:?}", new.trunks),
            ),
        ];
        for (section, changed) in restart_only {
            if changed {
                tracing::warn!(
                    section,
                    "configuration reloaded; this section's changes apply at the next restart"
                );
            }
        }
        tracing::info!(users = new.users.len(), "configuration reloaded");
        self.auth
            .set_algorithms(reload.config.sip.digest_algorithms());
        self.config = reload.config;
        self.dialplan = reload.dialplan;
    }

    /// Hands `input` to a call without waiting: a call whose queue is full gets it
    /// later from a task of its own when it must not be lost (CANCEL), or has it
    /// refused (a request gets 503, and the phone retries; an ACK is sent again with
    /// the 2xx retransmission that asks for it).
    async fn to_call(&self, inputs: &mpsc::Sender<CallInput>, input: CallInput) {
        match inputs.try_send(input) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(input)) => match input {
                CallInput::Request(req) => {
                    tracing::debug!("call busy: 503");
                    let mut r =
                        Message::response_to(&req.request, StatusCode::SERVICE_UNAVAILABLE, None);
                    r.headers_mut()
                        .push(HeaderName::RetryAfter, ByteStr::from_static("1"));
                    let _ = req.respond(r).await;
                }
                CallInput::Ack => {}
                other => {
                    let inputs = inputs.clone();
                    tokio::spawn(async move {
                        let _ = inputs.send(other).await;
                    });
                }
            },
        }
    }

    /// Runs a call's task, counted as alive until it returns.
    fn spawn_call(&mut self, call: impl Future<Output = ()> + Send + 'static) {
        let alive = self.alive.clone();
        let active = self.calls_active.clone();
        active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.calls_total += 1;
        tokio::spawn(async move {
            call.await;
            active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(alive);
        });
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Route { keys, tx, inputs } => {
                for key in keys {
                    self.dialogs.insert(key, inputs.clone());
                }
                if let Some(tx) = tx {
                    self.invites.insert(tx, inputs);
                }
            }
            Notice::Ended { keys, tx } => {
                for key in keys {
                    self.dialogs.remove(&key);
                }
                if let Some(tx) = tx {
                    self.invites.remove(&tx);
                }
            }
            Notice::Replace {
                call_id,
                tags,
                reply,
            } => {
                // Replaces names the tags from the recipient's view (to-tag ours);
                // some phones swap them, so either matches.
                let call = tags
                    .into_iter()
                    .find_map(|tag| self.dialogs.get(&(call_id.clone(), tag)));
                if let Some(inputs) = call {
                    // Not awaited (the loop must not block on a busy call): a full
                    // queue drops `reply`, and the transfer fails with 481.
                    let _ = inputs.try_send(CallInput::HandOver {
                        replaced: call_id,
                        reply,
                    });
                }
            }
            Notice::Group {
                group,
                member,
                ended,
            } => {
                // Copied only while calls still route with the previous history.
                let history = Arc::make_mut(&mut self.groups);
                match ended {
                    None => history.answered(&group, &member),
                    Some(at) => history.ended(&group, &member, at),
                }
            }
        }
    }

    async fn incoming(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Request(req) => self.request(req).await,
            Incoming::Ack { request, .. } => {
                if let Some(inputs) = dialog_key(&request).and_then(|k| self.dialogs.get(&k)) {
                    self.to_call(inputs, CallInput::Ack).await;
                }
            }
            Incoming::Cancelled { tx, .. } => {
                if let Some(inputs) = self.invites.get(&tx) {
                    self.to_call(inputs, CallInput::Cancelled).await;
                }
            }
            Incoming::NoAck(tx) => {
                if let Some(inputs) = self.invites.get(&tx) {
                    self.to_call(inputs, CallInput::NoAck).await;
                }
            }
            _ => {}
        }
    }

    async fn request(&mut self, req: ServerRequest) {
        if self.bans.is_banned(req.source.addr.ip(), Instant::now()) {
            // No answer at all: a scanner learns nothing and spends its time waiting.
            return;
        }
        let method = req.request.method().cloned();
        // In-dialog requests go to their call, or get 481.
        if req.request.to().is_ok_and(|t| t.tag().is_some()) {
            match dialog_key(&req.request).and_then(|k| self.dialogs.get(&k)) {
                Some(inputs) => {
                    self.to_call(inputs, CallInput::Request(Box::new(req)))
                        .await;
                }
                None => {
                    tracing::debug!(key = ?dialog_key(&req.request), known = self.dialogs.len(), "no dialog: 481");
                    answer(&req, StatusCode::CALL_DOES_NOT_EXIST).await
                }
            }
            return;
        }
        match method {
            Some(Method::Register) => self.register(req).await,
            Some(Method::Invite) => self.invite(req).await,
            Some(Method::Options) => answer(&req, StatusCode::OK).await,
            _ => {
                answer(
                    &req,
                    StatusCode::new(501).unwrap_or(StatusCode::BAD_REQUEST),
                )
                .await
            }
        }
    }

    /// Checks credentials; on failure answers 401 itself and returns `None`. Unknown
    /// users get exactly the challenge known ones get (no enumeration). A banned
    /// (source, user) pair gets no answer at all; the user is the credentials' one, or
    /// the From user of a request that has none yet.
    async fn authenticate(&mut self, req: &ServerRequest) -> Option<String> {
        let ip = req.source.addr.ip();
        let at = Instant::now();
        let claimed = self.auth.claimed(&req.request);
        if self.bans.is_pair_banned(ip, &claimed, at) {
            // No answer: a phone retrying a wrong password learns nothing more, and
            // the other users behind its address are still served.
            return None;
        }
        let now = unix_now();
        let users = &self.config;
        let outcome = self
            .auth
            .check(&req.request, now, |name| {
                users.user(name).map(|u| u.password.clone())
            })
            .outcome;
        match outcome {
            Ok(v) => {
                self.bans.succeeded(ip, &v.username, at);
                Some(v.username)
            }
            Err(e) => {
                let banned = match e {
                    // A password guess (or an unknown user): counted for the pair.
                    AuthError::Refused => {
                        tracing::info!(peer = %req.source.addr, user = %claimed, error = %e, "authentication refused");
                        self.bans.failed(ip, &claimed, at)
                    }
                    // A right response on a spent or old nonce: a fresh one will do.
                    _ if e.is_stale() => None,
                    // No usable credentials: a challenge, counted against floods.
                    _ => self.bans.challenged(ip, at).then_some(Banned::Source),
                };
                match banned {
                    Some(Banned::Pair) => tracing::warn!(
                        peer = %ip,
                        user = %claimed,
                        seconds = self.config.security.ban_time,
                        "too many failed authentications: user banned from this source"
                    ),
                    Some(Banned::Source) => tracing::warn!(
                        peer = %ip,
                        seconds = self.config.security.ban_time,
                        "scanner or flood: source banned"
                    ),
                    None => {}
                }
                let r = self
                    .auth
                    .challenge(&req.request, &Err(e), now, &ids::token());
                let _ = req.respond(r).await;
                None
            }
        }
    }

    async fn register(&mut self, req: ServerRequest) {
        let Some(user) = self.authenticate(&req).await else {
            return;
        };
        let aor = req.request.to().ok().and_then(|t| {
            t.uri
                .as_sip()
                .and_then(|u| u.user.as_ref().map(ToString::to_string))
        });
        if aor.as_deref() != Some(user.as_str()) {
            // A user may only register its own line.
            answer(&req, StatusCode::FORBIDDEN).await;
            return;
        }
        let source = Some((req.source.addr, transport(req.source.transport)));
        let now = unix_now();
        let tag = ids::token();
        let (registered, generation, durable) = match self.registrar.lock() {
            Ok(mut registrar) => {
                let registered = registrar.register(&req.request, &user, source, now);
                let store = registrar.store();
                (registered, store.generation(), store.durable())
            }
            Err(_) => {
                answer(&req, StatusCode::SERVER_INTERNAL_ERROR).await;
                return;
            }
        };
        let response = match registered {
            Ok(bindings) => {
                tracing::info!(user = %user, peer = %req.source.addr, contacts = bindings.len(), "registered");
                self.bus.publish(crate::events::Event::Registration {
                    user: user.clone(),
                    contacts: bindings.len(),
                });
                Registrar::<FileStore>::ok_response(&req.request, &bindings, &tag, now)
            }
            Err(e) => e.response(&req.request, &tag),
        };
        // The 200 OK goes out once the binding is on disk; the loop goes on meanwhile.
        tokio::spawn(async move {
            crate::store::wait_durable(durable, generation).await;
            let _ = req.respond(response).await;
        });
    }

    async fn invite(&mut self, req: ServerRequest) {
        if self.stopping {
            answer(&req, StatusCode::SERVICE_UNAVAILABLE).await;
            return;
        }
        if req.request.max_forwards().and_then(Result::ok) == Some(0) {
            answer(&req, StatusCode::TOO_MANY_HOPS).await;
            return;
        }
        let dialed = req
            .request
            .request_uri()
            .and_then(Uri::as_sip)
            .and_then(|u| u.user.as_ref().map(ToString::to_string))
            .unwrap_or_default();
        if let Some(trunk) = self.trunk_addrs.get(&req.source.addr.ip()) {
            // A trunk is trusted by its address: its calls are routed by DID.
            let (number, name) = pbxkit::engine::trunk_caller(&req.request);
            tracing::info!(trunk = %trunk, did = %dialed, from = %number, "incoming call");
            // The call gives the count back when it ends.
            self.in_use.add(&number);
            let setup = CallSetup {
                config: self.config.clone(),
                trunk_states: self.trunk_states.clone(),
                context: crate::routing::INCALL_CONTEXT,
                caller_name: name,
                caller_user: None,
                caller_exten: number,
                dialed,
                dialplan: self.dialplan.clone(),
                registrar: self.registrar.clone(),
                live: self.live(),
                realm: self.config.sip.realm.clone(),
                ports: self.ports.clone(),
                cdr: self.cdr.clone(),
                bus: self.bus.clone(),
            };
            self.spawn_call(call::run(
                setup,
                req,
                self.endpoint.clone(),
                self.notices.clone(),
            ));
            return;
        }
        let Some(caller) = self.authenticate(&req).await else {
            return;
        };
        let limit = self.config.user(&caller).map_or(u32::MAX, |u| u.call_limit);
        if self.in_use.get(&caller) >= limit {
            tracing::info!(user = %caller, limit, "call-limit reached");
            answer(&req, StatusCode::BUSY_HERE).await;
            return;
        }
        // Feature codes that change the caller's services (the default codes start
        // with `*`: other calls are not routed twice).
        let req = if dialed.starts_with('*') {
            match self.feature(req, &caller, &dialed) {
                Some(req) => req,
                None => return,
            }
        } else {
            req
        };
        if let Some(ext) = self.config.extension(&dialed) {
            let call = crate::apps::AppCall {
                caller,
                exten: dialed,
                app: ext.app,
                file: ext.file.clone(),
                cdr: self.cdr.clone(),
            };
            let (endpoint, notices, ports) = (
                self.endpoint.clone(),
                self.notices.clone(),
                self.ports.clone(),
            );
            self.spawn_call(crate::apps::run(call, req, endpoint, notices, ports));
            return;
        }
        // Checked and counted in one step: two calls arriving together cannot both
        // pass the line's call-limit. The call gives the count back when it ends.
        if !self.in_use.try_add(&caller, limit) {
            tracing::info!(user = %caller, limit, "call-limit reached");
            answer(&req, StatusCode::BUSY_HERE).await;
            return;
        }
        let caller_user = self.config.user(&caller).cloned();
        let setup = CallSetup {
            config: self.config.clone(),
            trunk_states: self.trunk_states.clone(),
            context: "default",
            caller_name: caller_user.map(|u| u.name).unwrap_or_default(),
            caller_user: Some(caller.clone()),
            caller_exten: caller,
            dialed,
            dialplan: self.dialplan.clone(),
            registrar: self.registrar.clone(),
            live: self.live(),
            realm: self.config.sip.realm.clone(),
            ports: self.ports.clone(),
            cdr: self.cdr.clone(),
            bus: self.bus.clone(),
        };
        self.spawn_call(call::run(
            setup,
            req,
            self.endpoint.clone(),
            self.notices.clone(),
        ));
    }
}

impl Service {
    /// Runs `dialed` as a feature code of `caller` when it is one that changes
    /// services: the change is saved, then the caller hears the confirmation beeps.
    /// Gives the request back when it is not such a code.
    fn feature(&mut self, req: ServerRequest, caller: &str, dialed: &str) -> Option<ServerRequest> {
        let user = self.config.user(caller)?;
        let live = self.live();
        let attempt = pbxkit_dialplan::CallAttempt {
            context: "default",
            caller: pbxkit_dialplan::Caller {
                number: caller,
                name: &user.name,
                user: Some(caller),
            },
            dialed,
            at: jiff::Timestamp::now(),
            user_state: &live,
        };
        let action = match self.dialplan.decide(&attempt).map(|r| r.decision) {
            Ok(pbxkit_dialplan::Decision::Feature { action, .. })
                if crate::features::changes_services(&action) =>
            {
                action
            }
            _ => return Some(req),
        };
        let configured = Config::services(user);
        let (users, caller, dialed) = (self.users.clone(), caller.to_owned(), dialed.to_owned());
        let call = crate::apps::AppCall {
            caller: caller.clone(),
            exten: dialed,
            app: crate::config::App::Playback,
            file: None,
            cdr: self.cdr.clone(),
        };
        let (endpoint, notices, ports) = (
            self.endpoint.clone(),
            self.notices.clone(),
            self.ports.clone(),
        );
        self.spawn_call(async move {
            match crate::features::apply(&users, &caller, &configured, &action).await {
                Ok(services) => {
                    tracing::debug!(user = %caller, ?services, "services changed");
                    crate::apps::run(call, req, endpoint, notices, ports).await;
                }
                Err(crate::features::FeatureError::Incomplete) => {
                    answer(&req, StatusCode::ADDRESS_INCOMPLETE).await;
                }
                Err(e) => {
                    tracing::error!(user = %caller, error = %e, "feature code not applied");
                    answer(&req, StatusCode::SERVER_INTERNAL_ERROR).await;
                }
            }
        });
        None
    }
}

fn ip_of(addr: &std::net::SocketAddr) -> std::net::IpAddr {
    addr.ip()
}

/// Answers with just a status.
pub(crate) async fn answer(req: &ServerRequest, code: StatusCode) {
    let _ = req
        .respond(Message::response_to(
            &req.request,
            code,
            Some(&ids::token()),
        ))
        .await;
}

/// The key the main loop routes an in-dialog request by: its Call-ID and To tag (ours).
fn dialog_key(request: &Message) -> Option<DialogKey> {
    Some((
        request.call_id().ok()?.0.to_string(),
        request.to().ok()?.tag()?.to_owned(),
    ))
}

pub(crate) fn transport(kind: TransportKind) -> Transport {
    match kind {
        TransportKind::Udp => Transport::Udp,
        TransportKind::Tcp => Transport::Tcp,
        TransportKind::Tls => Transport::Tls,
        TransportKind::Ws => Transport::Ws,
    }
}

/// Where to send requests for a binding: where its REGISTER came from (NAT-safe),
/// else its Contact.
pub(crate) fn binding_target(b: &pbxkit_sip::registrar::Binding) -> Option<Target> {
    if let Some((addr, t)) = &b.source {
        let transport = match t {
            Transport::Tcp => TransportKind::Tcp,
            Transport::Tls => TransportKind::Tls,
            Transport::Ws | Transport::Wss => TransportKind::Ws,
            _ => TransportKind::Udp,
        };
        return Some(Target {
            addr: *addr,
            transport,
        });
    }
    let sip = b.uri.as_sip()?;
    let pbxkit_sip::Host::Ip(ip) = sip.host else {
        return None;
    };
    let transport = if sip.transport().as_deref() == Some("tcp") {
        TransportKind::Tcp
    } else {
        TransportKind::Udp
    };
    Some(Target {
        addr: std::net::SocketAddr::new(ip, sip.port.unwrap_or(5060)),
        transport,
    })
}

/// Our address as `peer` should see it: the listen address, or when that is a
/// wildcard, the local address of the route towards the peer.
pub(crate) fn advertised(
    endpoint: &EndpointHandle,
    peer: std::net::SocketAddr,
) -> std::net::SocketAddr {
    let local = endpoint.local_addr();
    if !local.ip().is_unspecified() {
        return local;
    }
    std::net::SocketAddr::new(route_source(peer.ip()).unwrap_or(local.ip()), local.port())
}

/// Most peers whose route source is remembered; the table starts again when full.
const ROUTES_KEPT: usize = 4096;

/// The local address the kernel sends from towards `peer`, asked once per peer
/// (connecting a UDP socket is a syscall, not to be made for every Via and Contact).
fn route_source(peer: std::net::IpAddr) -> Option<std::net::IpAddr> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static ROUTES: OnceLock<Mutex<HashMap<std::net::IpAddr, std::net::IpAddr>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Mutex::default);
    if let Some(ip) = routes.lock().ok()?.get(&peer) {
        return Some(*ip);
    }
    let wildcard = if peer.is_ipv6() {
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let ip = std::net::UdpSocket::bind(wildcard)
        .and_then(|s| {
            s.connect((peer, 9))?;
            s.local_addr()
        })
        .ok()?
        .ip();
    let mut routes = routes.lock().ok()?;
    if routes.len() >= ROUTES_KEPT {
        routes.clear();
    }
    routes.insert(peer, ip);
    Some(ip)
}

/// Our Contact towards `target`.
pub(crate) fn our_contact(endpoint: &EndpointHandle, target: Target) -> ByteStr {
    let t = if target.transport == TransportKind::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    ByteStr::from(format!(
        "<sip:{}@{}{t}>",
        NODE_ID.get().map_or("pbx", String::as_str),
        advertised(endpoint, target.addr)
    ))
}

/// This node's id (`[pbx] node_id`), the user part of our Contact: requests within
/// our dialogs name the node that owns the call, for a proxy in front of several.
static NODE_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
