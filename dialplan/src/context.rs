//! Contexts compiled into [`ExtensionTable`]s, and [`Dialplan`], the whole compiled
//! configuration that routing decisions are asked of.
//!
//! A lookup in a context searches its own entries first, then its includes in order,
//! depth first; a context already searched during the same lookup is skipped, so
//! diamonds and (rejected anyway) cycles terminate (reference 003 "Les contextes" 3;
//! `DESIGN.md` §3 "local extensions before includes, includes in order").
//!
//! Entries of a context are the extensions of its users, groups, queues and
//! conference rooms (internal contexts), its DIDs (incall contexts) and its route
//! patterns (outcall contexts). Route patterns are searched by priority, lowest
//! first, each priority in `pbx.c` order (see [`crate::outcall`]).

use std::collections::HashMap;

use jiff::tz::TimeZoneDatabase;

use crate::callerid::CallerIdRewriter;
use crate::config::{
    ConferenceConfig, Config, ConfigError, ContextConfig, ContextKind, GroupConfig, IncallConfig,
    ObjectKind, ObjectRef, OutcallConfig, OutcallPatternConfig, QueueConfig, UserConfig,
    parse_pattern,
};
use crate::pattern::Pattern;
use crate::permission::Permission;
use crate::schedule::Schedule;
use crate::table::ExtensionTable;

/// What an entry of a context leads to (indices into the [`Config`] lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    User(usize),
    Group(usize),
    Queue(usize),
    Conference(usize),
    Incall(usize),
    Outcall { route: usize, pattern: usize },
}

/// What a dialled number reaches in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reached<'a> {
    /// A user's extension.
    User(&'a UserConfig),
    /// A group's extension.
    Group(&'a GroupConfig),
    /// A queue's extension.
    Queue(&'a QueueConfig),
    /// A conference room's extension.
    Conference(&'a ConferenceConfig),
    /// An incoming call route's DID.
    Incall(&'a IncallConfig),
    /// An outgoing call route's pattern.
    Outcall(&'a OutcallConfig, &'a OutcallPatternConfig),
}

/// The entry a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The context that holds the entry (the one asked or an included one).
    pub context: &'a str,
    /// The entry, as written in the configuration.
    pub pattern: &'a Pattern,
    /// What it leads to.
    pub reached: Reached<'a>,
}

/// Why a call could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The call names a context that is not configured.
    #[error("unknown context '{context}'")]
    UnknownContext {
        /// The context.
        context: String,
    },
    /// Nothing in the context (or its includes) matches the number.
    #[error("no entry for '{number}' in context '{context}' or its includes")]
    NoMatch {
        /// The context.
        context: String,
        /// The number.
        number: String,
    },
    /// The number reaches something else than what the operation routes (e.g. an
    /// internal extension when routing an outgoing call).
    #[error("'{number}' in context '{context}' reaches {reached}, not {expected}")]
    Unexpected {
        /// The context that holds the entry.
        context: String,
        /// The number.
        number: String,
        /// What it reaches.
        reached: ObjectRef,
        /// What was expected.
        expected: ObjectKind,
    },
    /// Destinations lead to destinations more than [`crate::decision::MAX_DEPTH`]
    /// times (a loop in the configuration).
    #[error("more than {limit} destinations followed")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A destination names an object that is not configured.
    #[error("destination {object} does not exist")]
    Missing {
        /// The object.
        object: ObjectRef,
    },
}

#[derive(Debug, Clone)]
struct Context {
    name: String,
    kind: ContextKind,
    includes: Vec<usize>,
    table: ExtensionTable<Target>,
    /// Outgoing route patterns by priority, lowest first.
    outcalls: Vec<(u32, ExtensionTable<Target>)>,
}

impl Context {
    fn lookup(&self, number: &str) -> Option<(&Pattern, Target)> {
        self.table
            .lookup(number)
            .or_else(|| self.outcalls.iter().find_map(|(_, t)| t.lookup(number)))
            .map(|(p, t)| (p, *t))
    }

    fn could_match_more(&self, number: &str) -> bool {
        self.table.could_match_more(number)
            || self
                .outcalls
                .iter()
                .any(|(_, t)| t.could_match_more(number))
    }
}

/// The compiled configuration: ask it for routing decisions.
///
/// Build it with [`Dialplan::new`]; then [`lookup`](Self::lookup) a number in a
/// context, or ask for a whole decision with [`route_incall`](Self::route_incall) and
/// [`route_outcall`](Self::route_outcall).
#[derive(Debug, Clone)]
pub struct Dialplan {
    pub(crate) config: Config,
    contexts: Vec<Context>,
    context_index: HashMap<String, usize>,
    pub(crate) permissions: HashMap<String, Permission>,
    pub(crate) schedules: HashMap<String, Schedule>,
    pub(crate) rewriter: CallerIdRewriter,
    /// User name → indices of the groups the user is a member of.
    pub(crate) user_groups: HashMap<String, Vec<usize>>,
    pub(crate) user_index: HashMap<String, usize>,
    pub(crate) index: crate::decision::Index,
    pub(crate) features: crate::features::Features,
}

impl Dialplan {
    /// Validates and compiles `config`. Schedules' time zones are resolved in
    /// `tzdb` (pass `jiff::tz::db()` for the system's database).
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`]: everything [`Config::validate`] checks, unknown time
    /// zones, and two entries of one context for the same extension (also two route
    /// patterns equal in `pbx.c` terms at the same priority).
    pub fn new(config: Config, tzdb: &TimeZoneDatabase) -> Result<Self, ConfigError> {
        config.validate()?;
        let context_index: HashMap<String, usize> = config
            .contexts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut contexts: Vec<Context> = config
            .contexts
            .iter()
            .map(|c| Context {
                name: c.name.clone(),
                kind: c.kind,
                includes: c
                    .includes
                    .iter()
                    .filter_map(|name| context_index.get(name).copied())
                    .collect(),
                table: ExtensionTable::new(),
                outcalls: Vec::new(),
            })
            .collect();
        let mut owners: HashMap<(usize, Target), ObjectRef> = HashMap::new();

        let extensions = config
            .users
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    ObjectKind::User,
                    &o.name,
                    &o.extension,
                    &o.context,
                    Target::User(i),
                )
            })
            .chain(config.groups.iter().enumerate().map(|(i, o)| {
                (
                    ObjectKind::Group,
                    &o.name,
                    &o.extension,
                    &o.context,
                    Target::Group(i),
                )
            }))
            .chain(config.queues.iter().enumerate().map(|(i, o)| {
                (
                    ObjectKind::Queue,
                    &o.name,
                    &o.extension,
                    &o.context,
                    Target::Queue(i),
                )
            }))
            .chain(config.conferences.iter().enumerate().map(|(i, o)| {
                (
                    ObjectKind::Conference,
                    &o.name,
                    &o.extension,
                    &o.context,
                    Target::Conference(i),
                )
            }));
        for (kind, name, extension, context, target) in extensions {
            let Some(extension) = extension else { continue };
            let object = ObjectRef::new(kind, name);
            let pattern = parse_pattern(&object, extension)?;
            let entry = NewEntry {
                context,
                priority: None,
                pattern,
                target,
                object,
            };
            insert(&mut contexts, &context_index, &mut owners, entry)?;
        }
        for (i, incall) in config.incalls.iter().enumerate() {
            let object = ObjectRef::new(ObjectKind::Incall, &incall.did);
            let pattern = parse_pattern(&object, &incall.did)?;
            let target = Target::Incall(i);
            let entry = NewEntry {
                context: &incall.context,
                priority: None,
                pattern,
                target,
                object,
            };
            insert(&mut contexts, &context_index, &mut owners, entry)?;
        }
        for (route, outcall) in config.outcalls.iter().enumerate() {
            let object = ObjectRef::new(ObjectKind::Outcall, &outcall.name);
            let external_prefix = context_index
                .get(&outcall.context)
                .and_then(|&i| config.contexts.get(i))
                .and_then(|c| c.external_prefix.as_deref());
            for (pattern_index, p) in outcall.patterns.iter().enumerate() {
                let pattern = match external_prefix {
                    Some(prefix) => parse_pattern(&object, &with_prefix(prefix, &p.pattern))?,
                    None => parse_pattern(&object, &p.pattern)?,
                };
                let target = Target::Outcall {
                    route,
                    pattern: pattern_index,
                };
                let entry = NewEntry {
                    context: &outcall.context,
                    priority: Some(outcall.priority),
                    pattern,
                    target,
                    object: object.clone(),
                };
                insert(&mut contexts, &context_index, &mut owners, entry)?;
            }
        }

        let permissions = config
            .permissions
            .iter()
            .map(|p| {
                Permission::new(p)
                    .map(|c| (p.name.clone(), c))
                    .map_err(|(text, source)| ConfigError::BadPattern {
                        object: ObjectRef::new(ObjectKind::Permission, &p.name),
                        text,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        let schedules = config
            .schedules
            .iter()
            .map(|s| {
                Schedule::new(s, tzdb)
                    .map(|c| (s.name.clone(), c))
                    .map_err(|source| ConfigError::Schedule {
                        object: ObjectRef::new(ObjectKind::Schedule, &s.name),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        let rewriter = CallerIdRewriter::new(&config.caller_id_rules).map_err(|(index, err)| {
            ConfigError::BadRegex {
                object: ObjectRef::new(ObjectKind::CallerIdRule, index.to_string()),
                regex: config
                    .caller_id_rules
                    .get(index)
                    .map(|r| r.callerid.clone())
                    .unwrap_or_default(),
                source: Box::new(err),
            }
        })?;
        let mut user_groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, group) in config.groups.iter().enumerate() {
            for member in &group.members {
                let groups = user_groups.entry(member.clone()).or_default();
                if !groups.contains(&i) {
                    groups.push(i);
                }
            }
        }
        let user_index = config
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        let index = crate::decision::Index::new(&config);
        let features = crate::features::Features::new(config.features.clone());
        Ok(Self {
            index,
            features,
            config,
            contexts,
            context_index,
            permissions,
            schedules,
            rewriter,
            user_groups,
            user_index,
        })
    }

    /// The configuration this was compiled from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The compiled feature codes.
    pub fn features(&self) -> &crate::features::Features {
        &self.features
    }

    /// The configuration of a context, if it exists.
    pub(crate) fn context_config(&self, context: &str) -> Option<&ContextConfig> {
        let index = self.context_index.get(context)?;
        self.config.contexts.get(*index)
    }

    /// The type of a context, if it exists.
    pub fn context_kind(&self, context: &str) -> Option<ContextKind> {
        let index = self.context_index.get(context)?;
        self.contexts.get(*index).map(|c| c.kind)
    }

    /// The entry `number` reaches from `context`: the context's own entries first,
    /// then its includes in order, depth first, each context searched once.
    ///
    /// # Errors
    ///
    /// [`RouteError::UnknownContext`] or [`RouteError::NoMatch`].
    pub fn lookup(&self, context: &str, number: &str) -> Result<Hit<'_>, RouteError> {
        let start = self.start(context)?;
        self.search(start)
            .find_map(|ctx| {
                let (pattern, target) = ctx.lookup(number)?;
                Some(Hit {
                    context: &ctx.name,
                    pattern,
                    reached: self.resolve(target)?,
                })
            })
            .ok_or_else(|| RouteError::NoMatch {
                context: context.to_owned(),
                number: number.to_owned(),
            })
    }

    /// Whether a longer number could match an entry from `context` (overlap dialling:
    /// wait for more digits), in the context or any context it includes.
    ///
    /// # Errors
    ///
    /// [`RouteError::UnknownContext`].
    pub fn could_match_more(&self, context: &str, number: &str) -> Result<bool, RouteError> {
        let start = self.start(context)?;
        Ok(self.search(start).any(|ctx| ctx.could_match_more(number)))
    }

    fn start(&self, context: &str) -> Result<usize, RouteError> {
        self.context_index
            .get(context)
            .copied()
            .ok_or_else(|| RouteError::UnknownContext {
                context: context.to_owned(),
            })
    }

    /// The contexts searched from `start`, in order: pre-order depth-first walk of
    /// the includes, each context once.
    fn search(&self, start: usize) -> impl Iterator<Item = &Context> {
        let mut seen = vec![false; self.contexts.len()];
        let mut stack = vec![start];
        std::iter::from_fn(move || {
            while let Some(index) = stack.pop() {
                let Some(slot) = seen.get_mut(index) else {
                    continue;
                };
                if std::mem::replace(slot, true) {
                    continue;
                }
                let ctx = self.contexts.get(index)?;
                stack.extend(ctx.includes.iter().rev());
                return Some(ctx);
            }
            None
        })
    }

    fn resolve(&self, target: Target) -> Option<Reached<'_>> {
        let c = &self.config;
        Some(match target {
            Target::User(i) => Reached::User(c.users.get(i)?),
            Target::Group(i) => Reached::Group(c.groups.get(i)?),
            Target::Queue(i) => Reached::Queue(c.queues.get(i)?),
            Target::Conference(i) => Reached::Conference(c.conferences.get(i)?),
            Target::Incall(i) => Reached::Incall(c.incalls.get(i)?),
            Target::Outcall { route, pattern } => {
                let route = c.outcalls.get(route)?;
                Reached::Outcall(route, route.patterns.get(pattern)?)
            }
        })
    }
}

impl Reached<'_> {
    /// The object reached, for messages.
    pub fn object(&self) -> ObjectRef {
        match self {
            Self::User(o) => ObjectRef::new(ObjectKind::User, &o.name),
            Self::Group(o) => ObjectRef::new(ObjectKind::Group, &o.name),
            Self::Queue(o) => ObjectRef::new(ObjectKind::Queue, &o.name),
            Self::Conference(o) => ObjectRef::new(ObjectKind::Conference, &o.name),
            Self::Incall(o) => ObjectRef::new(ObjectKind::Incall, &o.did),
            Self::Outcall(o, _) => ObjectRef::new(ObjectKind::Outcall, &o.name),
        }
    }
}

/// A route pattern with the outcall context's external prefix in front: a literal
/// prefix (validated: digits, `*`, `#`) keeps the pattern's `pbx.c` order among the
/// routes, and overlap dialling waits after the prefix alone.
fn with_prefix(prefix: &str, pattern: &str) -> String {
    match pattern.strip_prefix('_') {
        Some(rest) => format!("_{prefix}{rest}"),
        None => format!("{prefix}{pattern}"),
    }
}

/// An entry to add to a context.
struct NewEntry<'a> {
    context: &'a str,
    /// The priority of a route pattern; `None` for other entries.
    priority: Option<u32>,
    pattern: Pattern,
    target: Target,
    object: ObjectRef,
}

/// Adds an entry to a context (to the route table of `priority` when given),
/// refusing a second entry for the same extension.
fn insert(
    contexts: &mut [Context],
    index: &HashMap<String, usize>,
    owners: &mut HashMap<(usize, Target), ObjectRef>,
    entry: NewEntry<'_>,
) -> Result<(), ConfigError> {
    let NewEntry {
        context,
        priority,
        pattern,
        target,
        object,
    } = entry;
    let unknown = || ConfigError::Unknown {
        referrer: object.clone(),
        missing: ObjectRef::new(ObjectKind::Context, context),
    };
    let ctx_index = *index.get(context).ok_or_else(unknown)?;
    let ctx = contexts.get_mut(ctx_index).ok_or_else(unknown)?;
    let table = match priority {
        None => &mut ctx.table,
        Some(priority) => {
            let at = ctx.outcalls.partition_point(|(p, _)| *p < priority);
            if ctx.outcalls.get(at).is_none_or(|(p, _)| *p != priority) {
                ctx.outcalls.insert(at, (priority, ExtensionTable::new()));
            }
            match ctx.outcalls.get_mut(at) {
                Some((_, table)) => table,
                None => return Err(unknown()),
            }
        }
    };
    match table.insert(pattern, target) {
        Ok(()) => {
            owners.insert((ctx_index, target), object);
            Ok(())
        }
        Err(duplicate) => {
            let first = table
                .get(&duplicate.existing)
                .and_then(|(_, t)| owners.get(&(ctx_index, *t)))
                .cloned()
                .unwrap_or_else(|| object.clone());
            Err(ConfigError::DuplicateExtension {
                context: context.to_owned(),
                extension: duplicate.pattern.as_str().to_owned(),
                first,
                second: object,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) const EXAMPLE: &str = r#"
        [[contexts]]
        name = "default"
        kind = "internal"
        includes = ["to-extern", "services"]
        ranges.users = [{ start = "1000", end = "1999" }]
        ranges.groups = [{ start = "3000", end = "3099" }]
        ranges.conferences = [{ start = "4000", end = "4099" }]

        [[contexts]]
        name = "services"
        kind = "internal"
        includes = ["default"]
        ranges.users = [{ start = "2000", end = "2099" }]

        [[contexts]]
        name = "to-extern"
        kind = "outcall"

        [[users]]
        name = "alice"
        extension = "1000"
        context = "default"

        [[users]]
        name = "helpdesk"
        extension = "2000"
        context = "services"

        [[groups]]
        name = "sales"
        extension = "3000"
        context = "default"

        [[conferences]]
        name = "weekly"
        extension = "4000"
        context = "default"

        [[trunks]]
        name = "trunksip"

        [[outcalls]]
        name = "all"
        context = "to-extern"
        trunks = ["trunksip"]
        patterns = [{ pattern = "_X." }]
    "#;

    fn dialplan(text: &str) -> Dialplan {
        let config: Config = toml::from_str(text).expect("TOML");
        Dialplan::new(config, jiff::tz::db()).expect("valid")
    }

    fn reached_name(d: &Dialplan, context: &str, number: &str) -> Option<String> {
        d.lookup(context, number)
            .ok()
            .map(|h| h.reached.object().to_string())
    }

    #[test]
    fn local_entries_before_includes() {
        let d = dialplan(&acyclic());
        // 1000 is alice although the included outcall context's _X. matches too.
        assert_eq!(
            reached_name(&d, "default", "1000").as_deref(),
            Some("user 'alice'")
        );
        assert_eq!(
            reached_name(&d, "default", "3000").as_deref(),
            Some("group 'sales'")
        );
        assert_eq!(
            reached_name(&d, "default", "4000").as_deref(),
            Some("conference 'weekly'")
        );
        // 2000 is in "services", but "to-extern" is included first and _X. takes it.
        let hit = d.lookup("default", "2000").expect("hit");
        assert_eq!((hit.context, hit.pattern.as_str()), ("to-extern", "_X."));
        // From "services" itself, 2000 is local.
        assert_eq!(
            reached_name(&d, "services", "2000").as_deref(),
            Some("user 'helpdesk'")
        );
    }

    #[test]
    fn cycles_are_refused_and_search_terminates() {
        let config: Config = toml::from_str(EXAMPLE).expect("TOML");
        let err = Dialplan::new(config, jiff::tz::db()).expect_err("cycle");
        assert!(matches!(err, ConfigError::IncludeCycle { .. }), "{err}");
    }

    fn acyclic() -> String {
        EXAMPLE.replace("includes = [\"default\"]", "includes = []")
    }

    #[test]
    fn includes_in_order_depth_first() {
        let text = acyclic().replace(
            "includes = [\"to-extern\", \"services\"]",
            "includes = [\"services\", \"to-extern\"]",
        );
        let d = dialplan(&text);
        assert_eq!(
            reached_name(&d, "default", "2000").as_deref(),
            Some("user 'helpdesk'")
        );
        assert_eq!(
            reached_name(&d, "default", "2001").as_deref(),
            Some("outcall 'all'")
        );
        assert!(matches!(
            d.lookup("services", "1000"),
            Err(RouteError::NoMatch { .. })
        ));
        assert!(matches!(
            d.lookup("nowhere", "1000"),
            Err(RouteError::UnknownContext { .. })
        ));
    }

    #[test]
    fn overlap_dialling_through_includes() {
        let d = dialplan(&acyclic().replace("_X.", "_0X."));
        assert!(d.could_match_more("default", "10").expect("known"));
        assert!(
            d.could_match_more("default", "0").expect("known"),
            "via to-extern"
        );
        assert!(!d.could_match_more("services", "0").expect("known"));
    }

    #[test]
    fn duplicate_extensions_are_refused() {
        // "10-00" is 1000 for Asterisk (dashes are separators).
        let text = acyclic().replace(
            "name = \"helpdesk\"\n        extension = \"2000\"\n        context = \"services\"",
            "name = \"helpdesk\"\n        extension = \"10-00\"\n        context = \"default\"",
        );
        let config: Config = toml::from_str(&text).expect("TOML");
        let err = Dialplan::new(config, jiff::tz::db()).expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "context 'default': user 'helpdesk' uses extension '10-00' already used by user 'alice'"
        );
    }

    #[test]
    fn duplicate_route_patterns_at_one_priority() {
        let text = acyclic().replace(
            "patterns = [{ pattern = \"_X.\" }]",
            "patterns = [{ pattern = \"_X.\" }, { pattern = \"_[0-9].\" }]",
        );
        let config: Config = toml::from_str(&text).expect("TOML");
        let err = Dialplan::new(config, jiff::tz::db()).expect_err("duplicate");
        assert!(
            matches!(&err, ConfigError::DuplicateExtension { extension, .. } if extension == "_[0-9]."),
            "{err}"
        );
    }

    proptest! {
        /// Adding a context nobody includes never changes a decision.
        #[test]
        fn unrelated_context_changes_nothing(
            number in "[0-9*]{1,6}",
            extra in prop::collection::vec("_?[0-9XN]{1,4}\\.?", 0..6),
        ) {
            let before = dialplan(&acyclic());
            let mut config: Config = toml::from_str(&acyclic()).expect("TOML");
            config.contexts.push(crate::config::ContextConfig {
                name: "other".into(),
                kind: ContextKind::Outcall,
                ranges: crate::config::Ranges::default(),
                includes: vec!["default".into()],
                did_length: None,
                external_prefix: None,
            });
            for (i, pattern) in extra.iter().enumerate() {
                if Pattern::parse(pattern).is_err() {
                    continue;
                }
                config.outcalls.push(OutcallConfig {
                    name: format!("extra{i}"),
                    context: "other".into(),
                    priority: u32::try_from(i).unwrap_or(0),
                    internal: false,
                    trunks: vec!["trunksip".into()],
                    patterns: vec![OutcallPatternConfig {
                        pattern: pattern.clone(),
                        strip: 0,
                        prefix: String::new(),
                        caller_id: None,
                    }],
                    call_permissions: vec![],
                    schedule: None,
                });
            }
            let after = Dialplan::new(config, jiff::tz::db()).expect("valid");
            for context in ["default", "services", "to-extern"] {
                let a = before.lookup(context, &number).map(|h| (h.context.to_owned(), h.pattern.clone(), h.reached.object()));
                let b = after.lookup(context, &number).map(|h| (h.context.to_owned(), h.pattern.clone(), h.reached.object()));
                prop_assert_eq!(a, b);
            }
        }
    }
}
