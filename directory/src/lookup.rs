//! [`Directory`]: sources, displays and profiles; lookup, reverse lookup and favorites.
//!
//! A *profile* names the sources a lookup searches, the [`Display`] that turns contacts
//! into rows, and deadlines (wazo-dird's `lookup` and `reverse` services):
//!
//! - [`Directory::lookup`] searches every source of the profile at once; sources that
//!   have not answered by the deadline (none by default) are dropped, not awaited, and
//!   named in [`LookupResult::timed_out`]; a source that fails is named in
//!   [`LookupResult::failed`]. Rows come in profile source order, deduplicated: one row
//!   per (source, unique id), and one row per identical set of displayed values.
//! - [`Directory::reverse`] asks the profile's reverse sources for a number and returns
//!   the first non-empty answer in source order, as soon as every source before it has
//!   answered empty, within a deadline of 1 s by default.
//! - [`Directory::favorites`] lists a user's favorite contacts through
//!   [`Source::list`]; the favorites themselves are a [`Favorites`] store, in memory
//!   unless [`Directory::set_favorites`] gives one kept on disk.
//!
//! Deadlines are waited on the directory's [`Timer`]: any runtime's sleep
//! ([`Directory::with_timer`]); with the `tokio` feature, `Directory::new()` uses
//! tokio's clock, so a profile with a deadline is then queried from inside a tokio
//! runtime with time enabled (paused time works, for tests).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::Deserialize;

use crate::favorites::{FavoriteError, Favorites};
use crate::source::{Contact, QueryContext, Source, SourceError};

/// The most favorites a user has in the store a [`Directory`] starts with.
pub const DEFAULT_MAX_FAVORITES: usize = 1000;

/// The reverse-lookup deadline when a profile does not set one.
pub const DEFAULT_REVERSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a display column holds, for consumers that present it (wazo-dird's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
#[non_exhaustive]
pub enum ColumnType {
    /// A name.
    Name,
    /// The main number (dialled on selection).
    Number,
    /// Another number that can be called (mobile…).
    Callable,
    /// An e-mail address.
    Email,
    /// Whether the contact is one of the user's favorites.
    Favorite,
    /// Whether the contact is a personal contact.
    Personal,
    /// A voicemail number.
    Voicemail,
    /// Any other identifier, kept as written.
    Other(String),
}

impl From<String> for ColumnType {
    fn from(value: String) -> Self {
        match value.as_str() {
            "name" => Self::Name,
            "number" => Self::Number,
            "callable" => Self::Callable,
            "email" => Self::Email,
            "favorite" => Self::Favorite,
            "personal" => Self::Personal,
            "voicemail" => Self::Voicemail,
            _ => Self::Other(value),
        }
    }
}

/// One column of a display.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Column {
    /// The label.
    pub title: String,
    /// The value when the contact has no (or an empty) `field`.
    #[serde(default)]
    pub default: Option<String>,
    /// What the column holds.
    #[serde(default, rename = "type")]
    pub kind: Option<ColumnType>,
    /// The contact field shown.
    #[serde(default)]
    pub field: Option<String>,
}

impl Column {
    /// A column showing `field`.
    pub fn new(title: impl Into<String>, kind: ColumnType, field: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            default: None,
            kind: Some(kind),
            field: Some(field.into()),
        }
    }

    /// The same column with a default value.
    #[must_use]
    pub fn with_default(mut self, default: impl Into<String>) -> Self {
        self.default = Some(default.into());
        self
    }

    fn value(&self, contact: &Contact) -> Option<String> {
        self.field
            .as_deref()
            .and_then(|field| contact.get(field))
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .or_else(|| self.default.clone())
    }
}

/// The columns a profile's results are shown with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Display {
    /// The columns, in order.
    pub columns: Vec<Column>,
}

impl Display {
    /// A display with these columns.
    pub fn new(columns: Vec<Column>) -> Self {
        Self { columns }
    }
}

/// A profile: which sources, which display, which deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    /// Sources searched by a lookup, in the order their results are listed.
    pub sources: Vec<String>,
    /// The display's name.
    pub display: String,
    /// Lookup deadline; `None` waits for every source.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Sources asked by a reverse lookup, in priority order (the lookup sources when
    /// absent from a configuration).
    #[serde(default)]
    pub reverse_sources: Option<Vec<String>>,
    /// Reverse-lookup deadline.
    #[serde(default = "default_reverse_timeout")]
    pub reverse_timeout: Duration,
}

fn default_reverse_timeout() -> Duration {
    DEFAULT_REVERSE_TIMEOUT
}

impl Profile {
    /// A profile searching `sources` (also used for reverse lookup) with `display`, no
    /// lookup deadline and the default reverse deadline.
    pub fn new<S: Into<String>>(
        sources: impl IntoIterator<Item = S>,
        display: impl Into<String>,
    ) -> Self {
        Self {
            sources: sources.into_iter().map(Into::into).collect(),
            display: display.into(),
            timeout: None,
            reverse_sources: None,
            reverse_timeout: DEFAULT_REVERSE_TIMEOUT,
        }
    }

    fn reverse_sources(&self) -> &[String] {
        self.reverse_sources.as_deref().unwrap_or(&self.sources)
    }
}

/// A configuration or query error of the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The profile is not configured.
    #[error("unknown profile {profile:?}")]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
    },
    /// A profile names a source that is not registered.
    #[error("profile {profile:?}: unknown source {source_name:?}")]
    UnknownSource {
        /// The profile.
        profile: String,
        /// The missing source.
        source_name: String,
    },
    /// A profile names a display that is not registered.
    #[error("profile {profile:?}: unknown display {display:?}")]
    UnknownDisplay {
        /// The profile.
        profile: String,
        /// The missing display.
        display: String,
    },
}

/// A column header of a [`LookupResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The column's title.
    pub title: String,
    /// The column's type.
    pub kind: Option<ColumnType>,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// One value per display column: the field, else the column's default.
    pub values: Vec<Option<String>>,
    /// Whether the contact is one of the user's favorites.
    pub favorite: bool,
    /// Whether the contact comes from a personal-contacts source.
    pub personal: bool,
    /// The contact as its source returned it.
    pub contact: Contact,
}

/// The answer to [`Directory::lookup`] or [`Directory::favorites`].
#[derive(Debug, Clone, Default)]
pub struct LookupResult {
    /// The display's columns.
    pub headers: Vec<Header>,
    /// The rows, deduplicated, in profile source order.
    pub rows: Vec<Row>,
    /// Sources that did not answer by the deadline (their results are dropped).
    pub timed_out: Vec<String>,
    /// Sources that failed, with their error.
    pub failed: Vec<(String, Arc<SourceError>)>,
}

/// A profile's sources, with their names, in profile order.
type Named<'a> = Vec<(&'a str, &'a Arc<dyn Source>)>;

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every future until `on_ready` breaks, all are done, or the deadline passes.
/// Returns the indexes of the futures still pending (dropped).
async fn race<'a, T>(
    futures: Vec<Pending<'a, T>>,
    mut sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    mut on_ready: impl FnMut(usize, T) -> ControlFlow<()>,
) -> Vec<usize> {
    let mut pending: Vec<Option<Pending<'a, T>>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(future) = slot
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *slot = None;
                if on_ready(i, value).is_break() {
                    return Poll::Ready(());
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            return Poll::Ready(());
        }
        match sleep.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
    pending
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.is_some())
        .map(|(i, _)| i)
        .collect()
}

/// Waits for a duration: all the lookup service needs from a runtime, so that the
/// crate does not tie its users to one.
pub trait Timer: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// [`Timer`] on tokio's clock (feature `tokio`; paused time works in tests).
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Sources, displays and profiles, and the favorites of each user.
pub struct Directory {
    timer: Arc<dyn Timer>,
    sources: HashMap<String, Arc<dyn Source>>,
    personal: HashSet<String>,
    displays: HashMap<String, Display>,
    profiles: HashMap<String, Profile>,
    favorites: Arc<Favorites>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("displays", &self.displays)
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tokio")]
impl Default for Directory {
    fn default() -> Self {
        Self::with_timer(Arc::new(TokioTimer))
    }
}

impl Directory {
    /// An empty directory whose deadlines run on tokio's clock (feature `tokio`).
    #[cfg(feature = "tokio")]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory whose deadlines run on `timer`.
    pub fn with_timer(timer: Arc<dyn Timer>) -> Self {
        Directory {
            timer,
            sources: HashMap::new(),
            personal: HashSet::new(),
            displays: HashMap::new(),
            profiles: HashMap::new(),
            favorites: Arc::new(Favorites::new(DEFAULT_MAX_FAVORITES)),
        }
    }

    /// Registers a source under its [`Source::name`] (replacing one of that name).
    pub fn add_source(&mut self, source: Arc<dyn Source>) {
        self.personal.remove(source.name());
        self.sources.insert(source.name().to_owned(), source);
    }

    /// Registers a personal-contacts source: its rows are flagged [`Row::personal`].
    pub fn add_personal_source(&mut self, source: Arc<dyn Source>) {
        self.personal.insert(source.name().to_owned());
        self.sources.insert(source.name().to_owned(), source);
    }

    /// Registers a display.
    pub fn add_display(&mut self, name: impl Into<String>, display: Display) {
        self.displays.insert(name.into(), display);
    }

    /// Registers a profile, after checking that its sources and display exist.
    ///
    /// # Errors
    /// [`LookupError::UnknownSource`] or [`LookupError::UnknownDisplay`].
    pub fn add_profile(
        &mut self,
        name: impl Into<String>,
        profile: Profile,
    ) -> Result<(), LookupError> {
        let name = name.into();
        for source in profile.sources.iter().chain(profile.reverse_sources()) {
            if !self.sources.contains_key(source) {
                return Err(LookupError::UnknownSource {
                    profile: name,
                    source_name: source.clone(),
                });
            }
        }
        if !self.displays.contains_key(&profile.display) {
            return Err(LookupError::UnknownDisplay {
                profile: name,
                display: profile.display,
            });
        }
        self.profiles.insert(name, profile);
        Ok(())
    }

    /// Replaces the favorites store (by default an empty one in memory, with at most
    /// [`DEFAULT_MAX_FAVORITES`] per user), for instance with one kept on disk
    /// ([`Favorites::open`]).
    pub fn set_favorites(&mut self, favorites: Arc<Favorites>) {
        self.favorites = favorites;
    }

    /// Marks or unmarks a contact (its source and unique id) as a favorite of `user`
    /// (see [`Favorites::set`]); returns whether this changed anything.
    ///
    /// # Errors
    /// [`FavoriteError::Limit`] or [`FavoriteError::Storage`].
    pub fn set_favorite(
        &self,
        user: &str,
        source: &str,
        id: &str,
        favorite: bool,
    ) -> Result<bool, FavoriteError> {
        self.favorites.set(user, source, id, favorite)
    }

    fn profile(&self, name: &str) -> Result<(&Profile, &Display), LookupError> {
        let profile = self
            .profiles
            .get(name)
            .ok_or_else(|| LookupError::UnknownProfile {
                profile: name.to_owned(),
            })?;
        let display =
            self.displays
                .get(&profile.display)
                .ok_or_else(|| LookupError::UnknownDisplay {
                    profile: name.to_owned(),
                    display: profile.display.clone(),
                })?;
        Ok((profile, display))
    }

    fn sources<'a>(
        &'a self,
        profile_name: &str,
        names: &'a [String],
    ) -> Result<Named<'a>, LookupError> {
        names
            .iter()
            .map(|name| {
                self.sources
                    .get(name)
                    .map(|source| (name.as_str(), source))
                    .ok_or_else(|| LookupError::UnknownSource {
                        profile: profile_name.to_owned(),
                        source_name: name.clone(),
                    })
            })
            .collect()
    }

    /// Searches every source of `profile` for `term` (see the module docs).
    ///
    /// # Errors
    /// [`LookupError::UnknownProfile`] (and the configuration errors of
    /// [`Directory::add_profile`]); a failing source is reported in the result instead.
    pub async fn lookup(
        &self,
        profile: &str,
        term: &str,
        ctx: &QueryContext,
    ) -> Result<LookupResult, LookupError> {
        let (config, display) = self.profile(profile)?;
        let sources = self.sources(profile, &config.sources)?;
        let futures = sources
            .iter()
            .map(|(_, source)| source.search(term, ctx))
            .collect();
        self.gather(display, &sources, futures, config.timeout, ctx)
            .await
    }

    /// Lists the favorites of the user in `ctx` among the sources of `profile`.
    ///
    /// # Errors
    /// As [`Directory::lookup`].
    pub async fn favorites(
        &self,
        profile: &str,
        ctx: &QueryContext,
    ) -> Result<LookupResult, LookupError> {
        let (config, display) = self.profile(profile)?;
        let sources = self.sources(profile, &config.sources)?;
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for (source, id) in ctx
            .user
            .as_deref()
            .map(|user| self.favorites.list(user))
            .unwrap_or_default()
        {
            wanted.entry(source).or_default().push(id);
        }
        // A source none of whose contacts is a favorite is not asked.
        let futures = sources
            .iter()
            .map(|(name, source)| -> Pending<'_, _> {
                match wanted.get(*name) {
                    Some(ids) => source.list(ids, ctx),
                    None => Box::pin(std::future::ready(Ok(Vec::new()))),
                }
            })
            .collect();
        self.gather(display, &sources, futures, config.timeout, ctx)
            .await
    }

    async fn gather(
        &self,
        display: &Display,
        sources: &[(&str, &Arc<dyn Source>)],
        futures: Vec<Pending<'_, Result<Vec<Contact>, SourceError>>>,
        timeout: Option<Duration>,
        ctx: &QueryContext,
    ) -> Result<LookupResult, LookupError> {
        let mut answers: Vec<Option<Result<Vec<Contact>, SourceError>>> =
            sources.iter().map(|_| None).collect();
        let late = race(
            futures,
            timeout.map(|d| self.timer.sleep(d)),
            |i, answer| {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(answer);
                }
                ControlFlow::Continue(())
            },
        )
        .await;
        let mut result = LookupResult {
            headers: display
                .columns
                .iter()
                .map(|c| Header {
                    title: c.title.clone(),
                    kind: c.kind.clone(),
                })
                .collect(),
            timed_out: late
                .iter()
                .filter_map(|&i| sources.get(i).map(|(name, _)| (*name).to_owned()))
                .collect(),
            ..LookupResult::default()
        };
        let user_favorites: HashSet<(String, String)> = ctx
            .user
            .as_deref()
            .map(|user| self.favorites.list(user))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut seen_ids = HashSet::new();
        let mut seen_values = HashSet::new();
        for ((name, _), answer) in sources.iter().zip(answers) {
            let contacts = match answer {
                None => continue,
                Some(Err(error)) => {
                    result.failed.push(((*name).to_owned(), Arc::new(error)));
                    continue;
                }
                Some(Ok(contacts)) => contacts,
            };
            for contact in contacts {
                if let Some(id) = &contact.id
                    && !seen_ids.insert((contact.source.clone(), id.clone()))
                {
                    continue;
                }
                let values: Vec<Option<String>> =
                    display.columns.iter().map(|c| c.value(&contact)).collect();
                if !seen_values.insert(values.clone()) {
                    continue;
                }
                let favorite = contact.id.as_ref().is_some_and(|id| {
                    user_favorites.contains(&(contact.source.to_string(), id.clone()))
                });
                result.rows.push(Row {
                    values,
                    favorite,
                    personal: self.personal.contains(contact.source.as_ref()),
                    contact,
                });
            }
        }
        Ok(result)
    }

    /// Reverse lookup: the first contact, in the profile's reverse-source order, that
    /// has `number` in a first-matched column; `None` when no source that answered in
    /// time has one. Failing and late sources count as empty.
    ///
    /// # Errors
    /// As [`Directory::lookup`].
    pub async fn reverse(
        &self,
        profile: &str,
        number: &str,
        ctx: &QueryContext,
    ) -> Result<Option<Contact>, LookupError> {
        let (config, _) = self.profile(profile)?;
        let sources = self.sources(profile, config.reverse_sources())?;
        let futures = sources
            .iter()
            .map(|(_, source)| source.first_match(number, ctx))
            .collect();
        // None: not answered yet; Some(None): answered empty or failed.
        let mut answers: Vec<Option<Option<Contact>>> = sources.iter().map(|_| None).collect();
        let mut found = None;
        race(
            futures,
            Some(self.timer.sleep(config.reverse_timeout)),
            |i, answer| {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(answer.ok().flatten());
                }
                first_in_order(&mut answers, &mut found)
            },
        )
        .await;
        if found.is_none() {
            // Deadline: the first answer among those that came.
            found = answers.into_iter().flatten().flatten().next();
        }
        Ok(found)
    }
}

/// Breaks with the first contact when every answer before it is in and empty.
fn first_in_order(
    answers: &mut [Option<Option<Contact>>],
    found: &mut Option<Contact>,
) -> ControlFlow<()> {
    for answer in answers.iter_mut() {
        match answer {
            None => return ControlFlow::Continue(()),
            Some(None) => {}
            Some(contact @ Some(_)) => {
                *found = contact.take();
                return ControlFlow::Break(());
            }
        }
    }
    ControlFlow::Continue(())
}
