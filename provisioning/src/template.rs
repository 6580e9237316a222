//! Jinja2 templates as provd plugins write them, rendered with minijinja under Jinja2's
//! default settings.
//!
//! - Templates are looked up by name in a list of [`TemplateDir`]s, the first that has
//!   the file winning: put the user override directory (provd's `var/templates`)
//!   before the plugin's own templates. `{% extends %}`, `{% include %}` and
//!   `{% import %}` use the same lookup.
//! - A device file is rendered from the first of `<file>.tpl`, `<model>.tpl` and
//!   `base.tpl` that exists ([`Templates::render_device_file`]).
//! - Jinja2 defaults: no autoescape, undefined values render empty, no trim/lstrip
//!   blocks, one trailing newline of each template source dropped; `e`/`escape`
//!   escape `& < > " '` as `&amp; &lt; &gt; &#34; &#39;` (MarkupSafe); `none`, `true`
//!   and `false` print as `None`, `True`, `False`; maps keep their insertion order and
//!   answer Python's `items()`, `iteritems()`, `keys()`, `values()`, `get()` and
//!   `has_key()`.
//! - Errors name the template file and line ([`TemplateError`]).
//! - Directories on disk are listed once, and template files read once:
//!   [`Templates::reload`] sees files added, changed or removed since.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectExt, Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

/// Where templates are looked up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TemplateDir {
    /// A directory on disk; names are relative paths inside it (`..` and absolute
    /// names are refused).
    Dir(PathBuf),
    /// Templates held in memory (built-in plugins), by name.
    Memory(Arc<BTreeMap<String, String>>),
}

impl TemplateDir {
    /// In-memory templates from `(name, source)` pairs.
    pub fn memory<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::Memory(Arc::new(
            files
                .into_iter()
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
                .collect(),
        ))
    }

    fn load(&self, name: &str) -> Result<Option<String>, Error> {
        match self {
            Self::Memory(files) => Ok(files.get(name).cloned()),
            Self::Dir(dir) => {
                let relative = Path::new(name);
                if relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Ok(None);
                }
                match std::fs::read_to_string(dir.join(relative)) {
                    Ok(source) => Ok(Some(source)),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                        ) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("cannot read template {name} in {}: {e}", dir.display()),
                    )),
                }
            }
        }
    }
}

/// A [`TemplateDir`] and, for a directory on disk, the names of its entries, read once
/// (until [`Templates::reload`]): a device file is looked up as `<file>.tpl` and
/// `<model>.tpl` before `base.tpl`, and most of these names do not exist, so without
/// the listing each rendering would ask the filesystem a few times for nothing.
#[derive(Debug)]
struct Source {
    dir: TemplateDir,
    /// The entries of a `Dir`, `None` until listed or when it cannot be listed (then
    /// each name is looked up on disk).
    listing: OnceLock<Option<HashSet<String>>>,
}

impl Source {
    fn new(dir: TemplateDir) -> Self {
        Self {
            dir,
            listing: OnceLock::new(),
        }
    }

    /// Whether the template `name` certainly does not exist here.
    fn surely_missing(&self, name: &str) -> bool {
        match &self.dir {
            TemplateDir::Memory(files) => !files.contains_key(name),
            TemplateDir::Dir(dir) => {
                let listing = self.listing.get_or_init(|| list(dir));
                // `a/b.tpl` cannot exist without an entry `a`.
                let first = name.split('/').next().unwrap_or(name);
                listing.as_ref().is_some_and(|names| !names.contains(first))
            }
        }
    }

    fn load(&self, name: &str) -> Result<Option<String>, Error> {
        if self.surely_missing(name) {
            return Ok(None);
        }
        self.dir.load(name)
    }
}

/// The names of the entries of `dir`: none if it does not exist (no template can be
/// found there then), `None` if it cannot be read.
fn list(dir: &Path) -> Option<HashSet<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(HashSet::new()),
        Err(_) => None,
    }
}

/// A template that cannot be found, compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// None of the names exists in any template directory.
    #[error("no template found among {}", tried.join(", "))]
    NotFound {
        /// The names tried, in order.
        tried: Vec<String>,
    },
    /// A syntax or rendering error, in `file` at `line`.
    #[error("template {file}, line {line}: {message}")]
    Render {
        /// The template in which the error is (an extended or included one, maybe).
        file: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// The context cannot be turned into template values.
    #[error("template context: {0}")]
    Context(String),
    /// The output of [`Templates::render_limited`] exceeded its limit.
    #[error("template {file}: output larger than {limit} bytes")]
    OutputTooLarge {
        /// The template rendered.
        file: String,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl TemplateError {
    fn from_minijinja(error: &Error, fallback_file: &str) -> Self {
        let message = match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        };
        Self::Render {
            file: error.name().unwrap_or(fallback_file).to_owned(),
            line: error.line().unwrap_or(0),
            message,
        }
    }
}

/// A set of template directories with a Jinja2-compatible environment.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    sources: Arc<[Source]>,
}

impl Templates {
    /// Templates looked up in `dirs`, the first that has a name winning.
    ///
    /// ```
    /// use pbxkit_provisioning::template::{TemplateDir, Templates};
    /// let plugin = TemplateDir::memory([
    ///     ("base.tpl", "[account]\n{% block lines %}{% endblock %}\nadmin = {{ admin|e }}\n"),
    ///     ("T46S.tpl", "{% extends 'base.tpl' %}{% block lines %}lines = {{ sip_lines|length }}{% endblock %}"),
    /// ]);
    /// let user = TemplateDir::memory([]);
    /// let templates = Templates::new([user, plugin]);
    /// let ctx = serde_json::json!({"sip_lines": {"1": {}, "2": {}}, "admin": "a<b"});
    /// let out = templates.render_device_file("001122aabbcc.cfg", Some("T46S"), &ctx)?;
    /// assert_eq!(out, "[account]\nlines = 2\nadmin = a&lt;b");
    /// # Ok::<(), pbxkit_provisioning::template::TemplateError>(())
    /// ```
    pub fn new(dirs: impl IntoIterator<Item = TemplateDir>) -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_debug(false);
        env.add_filter("e", escape);
        env.add_filter("escape", escape);
        env.set_unknown_method_callback(python_methods);
        env.set_formatter(|out, _state, value| {
            // Strings and line numbers are most of what templates print: write them
            // without the formatting machinery.
            if let Some(text) = value.as_str() {
                return out.write_str(text).map_err(Error::from);
            }
            if value.is_integer()
                && let Some(n) = value.as_usize()
            {
                return write_decimal(out, n).map_err(Error::from);
            }
            let text = match value.kind() {
                ValueKind::Undefined => return Ok(()),
                ValueKind::None => "None",
                ValueKind::Bool if value.is_true() => "True",
                ValueKind::Bool => "False",
                _ => return write!(out, "{value}").map_err(Error::from),
            };
            out.write_str(text).map_err(Error::from)
        });
        let mut templates = Self {
            env,
            sources: dirs.into_iter().map(Source::new).collect(),
        };
        templates.set_loader();
        templates
    }

    /// Looks templates up in `self.sources`, the first that has one winning.
    fn set_loader(&mut self) {
        let sources = Arc::clone(&self.sources);
        self.env.set_loader(move |name| {
            for source in sources.iter() {
                if let Some(text) = source.load(name)? {
                    return Ok(Some(text));
                }
            }
            Ok(None)
        });
    }

    /// Limits each rendering to `fuel` units of work (about one per instruction of the
    /// template machine; `None`: no limit), so that a template from an untrusted
    /// source cannot loop for ever. Recursion is always bounded by minijinja.
    pub fn set_fuel(&mut self, fuel: Option<u64>) {
        self.env.set_fuel(fuel);
    }

    /// Like [`Templates::render`], but fails with [`TemplateError::OutputTooLarge`] as
    /// soon as the output exceeds `max_output` bytes, instead of growing it.
    pub fn render_limited(
        &self,
        name: &str,
        context: &impl serde::Serialize,
        max_output: usize,
    ) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound && e.name().is_none_or(|n| n == name) {
                TemplateError::NotFound {
                    tried: vec![name.to_owned()],
                }
            } else {
                TemplateError::from_minijinja(&e, name)
            }
        })?;
        let context = serialized(context)?;
        let mut out = Limited {
            buf: Vec::new(),
            limit: max_output,
            exceeded: false,
        };
        let result = template.render_captured_to(context, &mut out);
        if out.exceeded {
            return Err(TemplateError::OutputTooLarge {
                file: name.to_owned(),
                limit: max_output,
            });
        }
        result.map_err(|e| TemplateError::from_minijinja(&e, name))?;
        String::from_utf8(out.buf).map_err(|e| TemplateError::Render {
            file: name.to_owned(),
            line: 0,
            message: e.to_string(),
        })
    }

    /// Forgets the templates loaded so far, and what the directories hold, so that
    /// changed, added and removed files are seen.
    pub fn reload(&mut self) {
        self.env.clear_templates();
        self.sources = self
            .sources
            .iter()
            .map(|source| Source::new(source.dir.clone()))
            .collect();
        self.set_loader();
    }

    /// Whether a template of this name exists (an error if it does but cannot be
    /// compiled).
    ///
    /// The entries of a directory on disk are listed the first time it is looked
    /// into, and template files once read are kept: call [`Templates::reload`] after
    /// adding, changing or removing files.
    pub fn exists(&self, name: &str) -> Result<bool, TemplateError> {
        // Answered here for most names tried by `render_device_file`, without the
        // engine's not-found error (allocated and formatted for nothing).
        if self.sources.iter().all(|s| s.surely_missing(name)) {
            return Ok(false);
        }
        match self.env.get_template(name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => Ok(false),
            Err(e) => Err(TemplateError::from_minijinja(&e, name)),
        }
    }

    /// The first of `names` that exists.
    pub fn select<'a>(&self, names: &[&'a str]) -> Result<&'a str, TemplateError> {
        for name in names {
            if self.exists(name)? {
                return Ok(name);
            }
        }
        Err(TemplateError::NotFound {
            tried: names.iter().map(|n| (*n).to_owned()).collect(),
        })
    }

    /// Renders the template `name` with `context` (any serializable value, usually the
    /// effective raw config plus the plugin's `XX_*` keys).
    pub fn render(
        &self,
        name: &str,
        context: &impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        self.render_value(name, serialized(context)?)
    }

    /// [`Templates::render`] with a [`Context`] that a plugin built.
    pub(crate) fn render_context(
        &self,
        name: &str,
        context: impl Into<Value>,
    ) -> Result<String, TemplateError> {
        self.render_value(name, context.into())
    }

    /// Renders the template `name` with a context already made of template values.
    fn render_value(&self, name: &str, context: Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound && e.name().is_none_or(|n| n == name) {
                TemplateError::NotFound {
                    tried: vec![name.to_owned()],
                }
            } else {
                TemplateError::from_minijinja(&e, name)
            }
        })?;
        template
            .render(context)
            .map_err(|e| TemplateError::from_minijinja(&e, name))
    }

    /// Renders the device file `file` (`001122aabbcc.cfg`) from the first of
    /// `<file>.tpl`, `<model>.tpl` and `base.tpl` that exists, as provd does.
    pub fn render_device_file(
        &self,
        file: &str,
        model: Option<&str>,
        context: &impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        self.render_device_context(file, model, serialized(context)?)
    }

    /// [`Templates::render_device_file`] with a [`Context`] that a plugin built.
    pub(crate) fn render_device_context(
        &self,
        file: &str,
        model: Option<&str>,
        context: impl Into<Value>,
    ) -> Result<String, TemplateError> {
        let by_file = format!("{file}.tpl");
        let by_model = model.map(|m| format!("{m}.tpl"));
        let mut names = vec![by_file.as_str()];
        names.extend(by_model.as_deref());
        names.push("base.tpl");
        let name = self.select(&names)?;
        self.render_value(name, context.into())
    }
}

/// Writes `n` in decimal, as `Display` would.
fn write_decimal(out: &mut Output<'_>, mut n: usize) -> std::fmt::Result {
    // Room for `u64::MAX`.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    match std::str::from_utf8(&digits[start..]) {
        Ok(text) => out.write_str(text),
        // Unreachable: ASCII digits are UTF-8.
        Err(_) => Err(std::fmt::Error),
    }
}

/// A writer that refuses to grow past `limit` bytes.
struct Limited {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `context` as a template value.
fn serialized(context: &impl serde::Serialize) -> Result<Value, TemplateError> {
    let value = Value::from(Serde(context));
    // A failed serialization gives an invalid value, which would only fail once the
    // template looks at it: report it now, as a typed error.
    if value.kind() == ValueKind::Invalid {
        return Err(TemplateError::Context(value.to_string()));
    }
    Ok(value)
}

/// A JSON value (from a raw config) as a template value, the same one that serde would
/// give but without its machinery: a device's whole raw config is converted for each
/// rendering, so this is on the path of every generated file.
pub(crate) fn json_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                // Without serde_json's `arbitrary_precision`, a number that is no
                // integer is a float: `as_f64` always answers.
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => items.iter().map(json_value).collect(),
        Json::Object(map) => map_value(map.iter().map(|(k, v)| (k.as_str(), json_value(v)))),
    }
}

/// Up to this many entries, a map is a [`SmallMap`]; larger ones are hashed, so that
/// a template looking up every key of a big map stays linear.
const SMALL_MAP_MAX: usize = 32;

/// A template map of `pairs` (whose keys are distinct), in their order.
pub(crate) fn map_value<K: Into<Value>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
    let pairs: Vec<(Value, Value)> = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
    if pairs.len() <= SMALL_MAP_MAX {
        Value::from_object(SmallMap(pairs))
    } else {
        Value::from_pairs(pairs)
    }
}

/// A map of a few entries, looked up by scanning them.
///
/// Templates see it as minijinja's own maps (same kind, order, iteration, lookups and
/// printing: both are [`Object`]s with the same enumeration), but building it neither
/// hashes nor allocates a hash table, which for the handful of keys of a SIP line or a
/// function key is most of the cost of the map, and scanning a few keys is as fast as
/// hashing one.
#[derive(Debug)]
struct SmallMap(Vec<(Value, Value)>);

impl Object for SmallMap {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_rev_key_value_enumerator(|this| {
            Box::new(this.0.iter().map(|(k, v)| (k.clone(), v.clone())))
        })
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The variables of a rendering: a device's raw config plus the values its plugin
/// computed (`XX_*`), in that order, a plugin value replacing a raw config key of the
/// same name in place, as when provd's plugins add them to the raw config dict.
///
/// Built from template values directly, so that a plugin converts each device's raw
/// config once and hands the result to the template engine without a serde round trip.
#[derive(Debug, Default)]
pub(crate) struct Context {
    vars: Vec<(Value, Value)>,
}

impl Context {
    /// The raw config's keys, converted with [`json_value`].
    pub(crate) fn from_json(map: &serde_json::Map<String, serde_json::Value>) -> Self {
        // With room for the plugin's values.
        let mut vars = Vec::with_capacity(map.len() + 16);
        vars.extend(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_value(v))),
        );
        Self { vars }
    }

    /// Sets the variable `name`.
    pub(crate) fn set(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        // A linear search: a context has a few dozen variables at most.
        match self.vars.iter_mut().find(|(k, _)| k.as_str() == Some(name)) {
            Some((_, slot)) => *slot = value,
            None => self.vars.push((Value::from(name), value)),
        }
    }
}

impl From<Context> for Value {
    fn from(context: Context) -> Self {
        map_value(context.vars)
    }
}

/// Jinja2's `e`/`escape` filter (MarkupSafe): `& < > " '` as
/// `&amp; &lt; &gt; &#34; &#39;`; the result is safe, and safe input is kept as is.
fn escape(value: &Value) -> Value {
    if value.is_safe() {
        return value.clone();
    }
    let text = match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".to_owned(),
        ValueKind::Bool if value.is_true() => "True".to_owned(),
        ValueKind::Bool => "False".to_owned(),
        _ => value.to_string(),
    };
    Value::from_safe_string(escape_str(&text))
}

/// The MarkupSafe escaping of `text`.
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Python dict methods that provd templates call (`sip_lines.iteritems()`).
fn python_methods(
    _state: &mut State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if value.kind() != ValueKind::Map {
        return Err(Error::from(ErrorKind::UnknownMethod));
    }
    let no_args = || {
        if args.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{method}() takes no arguments"),
            ))
        }
    };
    let keys = || -> Result<Vec<Value>, Error> { Ok(value.try_iter()?.collect()) };
    match method {
        "items" | "iteritems" => {
            no_args()?;
            let pairs: Result<Vec<Value>, Error> = keys()?
                .into_iter()
                .map(|k| Ok(Value::from(vec![k.clone(), value.get_item(&k)?])))
                .collect();
            Ok(Value::from(pairs?))
        }
        "keys" | "iterkeys" => {
            no_args()?;
            Ok(Value::from(keys()?))
        }
        "values" | "itervalues" => {
            no_args()?;
            let values: Result<Vec<Value>, Error> =
                keys()?.iter().map(|k| value.get_item(k)).collect();
            Ok(Value::from(values?))
        }
        "get" => {
            let (key, default) = match args {
                [key] => (key, Value::from(())),
                [key, default] => (key, default.clone()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "get() takes a key and an optional default",
                    ));
                }
            };
            let found = value.get_item(key)?;
            Ok(if found.is_undefined() { default } else { found })
        }
        "has_key" => match args {
            [key] => Ok(Value::from(!value.get_item(key)?.is_undefined())),
            _ => Err(Error::new(
                ErrorKind::InvalidOperation,
                "has_key() takes a key",
            )),
        },
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, ctx: serde_json::Value) -> Result<String, TemplateError> {
        Templates::new([TemplateDir::memory([("t.tpl", src)])]).render("t.tpl", &ctx)
    }

    #[test]
    fn jinja2_defaults() {
        assert_eq!(render("a{{ nope }}b\n", json!({})), Ok("ab".into()));
        assert_eq!(render("a\n\n", json!({})), Ok("a\n".into()));
        assert_eq!(render("{{ x }}", json!({"x": "<&>"})), Ok("<&>".into()));
        assert_eq!(
            render("{{ x|e }}|{{ x|escape }}", json!({"x": "&<>\"'/"})),
            Ok("&amp;&lt;&gt;&#34;&#39;/|&amp;&lt;&gt;&#34;&#39;/".into())
        );
        assert_eq!(
            render(
                "{{ n }} {{ t }} {{ f }}",
                json!({"n": null, "t": true, "f": false})
            ),
            Ok("None True False".into())
        );
        assert_eq!(
            render(
                "{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }} {{ 3 * 4 }}",
                json!({"a": 0, "b": 7, "c": 1_234_567_890, "d": -5, "e": 2.0,
                       "f": u64::MAX})
            ),
            Ok("0 7 1234567890 -5 2.0 18446744073709551615 12".into())
        );
        assert_eq!(
            render("{{ x|d('z') }}{{ y|default('z') }}", json!({"x": ""})),
            Ok("z".into())
        );
    }

    #[test]
    fn python_dict_methods_and_order() {
        let ctx = json!({"lines": {"2": {"n": "b"}, "10": {"n": "c"}, "1": {"n": "a"}}});
        assert_eq!(
            render(
                "{% for k, v in lines.iteritems() %}{{ k }}={{ v.n }};{% endfor %}",
                ctx.clone()
            ),
            Ok("2=b;10=c;1=a;".into())
        );
        assert_eq!(
            render(
                "{% for k, v in lines.items() if k != '10' %}{{ k }}{% endfor %}|{{ lines.keys()|join(',') }}|{{ lines.values()|length }}",
                ctx.clone()
            ),
            Ok("21|2,10,1|3".into())
        );
        assert_eq!(
            render("{{ lines.get('3', 'no') }}{{ lines.has_key('1') }}", ctx),
            Ok("noTrue".into())
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let t = Templates::new([TemplateDir::memory([
            ("base.tpl", "a\n{% block b %}{% endblock %}\n"),
            (
                "child.tpl",
                "{% extends 'base.tpl' %}\n{% block b %}\n{{ x.y.z }}\n{% endblock %}",
            ),
            ("syntax.tpl", "ok\n{% if %}\n"),
            ("missing.tpl", "{% include 'nope.tpl' %}"),
        ])]);
        let err = t.render("child.tpl", &json!({}));
        assert!(
            matches!(&err, Err(TemplateError::Render { file, line: 3, .. }) if file == "child.tpl"),
            "{err:?}"
        );
        let err = t.render("syntax.tpl", &json!({}));
        assert!(
            matches!(&err, Err(TemplateError::Render { file, line: 2, .. }) if file == "syntax.tpl"),
            "{err:?}"
        );
        let err = t.render("missing.tpl", &json!({}));
        assert!(matches!(&err, Err(TemplateError::Render { .. })), "{err:?}");
        assert_eq!(
            t.render("zz.tpl", &json!({})),
            Err(TemplateError::NotFound {
                tried: vec!["zz.tpl".into()]
            })
        );
    }

    #[test]
    fn lookup_order() {
        let user = TemplateDir::memory([("T46S.tpl", "user model")]);
        let plugin = TemplateDir::memory([
            ("base.tpl", "plugin base"),
            ("T46S.tpl", "plugin model"),
            ("001122aabbcc.cfg.tpl", "plugin device"),
        ]);
        let t = Templates::new([user, plugin]);
        let ctx = json!({});
        assert_eq!(
            t.render_device_file("001122aabbcc.cfg", Some("T46S"), &ctx),
            Ok("plugin device".into())
        );
        assert_eq!(
            t.render_device_file("a.cfg", Some("T46S"), &ctx),
            Ok("user model".into())
        );
        assert_eq!(
            t.render_device_file("a.cfg", Some("T48S"), &ctx),
            Ok("plugin base".into())
        );
        assert_eq!(
            t.render_device_file("a.cfg", None, &ctx),
            Ok("plugin base".into())
        );
        let empty = Templates::new([]);
        assert_eq!(
            empty.render_device_file("a.cfg", Some("M"), &ctx),
            Err(TemplateError::NotFound {
                tried: vec!["a.cfg.tpl".into(), "M.tpl".into(), "base.tpl".into()]
            })
        );
    }

    #[test]
    fn limits() {
        let mut t = Templates::new([TemplateDir::memory([
            (
                "loop.tpl",
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            ),
            (
                "big.tpl",
                "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}",
            ),
            ("ok.tpl", "{{ a }}"),
        ])]);
        t.set_fuel(Some(10_000));
        let err = t.render("loop.tpl", &json!({}));
        assert!(
            matches!(&err, Err(TemplateError::Render { message, .. }) if message.contains("fuel")),
            "{err:?}"
        );
        assert_eq!(
            t.render_limited("big.tpl", &json!({}), 5000),
            Err(TemplateError::OutputTooLarge {
                file: "big.tpl".into(),
                limit: 5000
            })
        );
        assert_eq!(
            t.render_limited("ok.tpl", &json!({"a": "é"}), 2),
            Ok("é".into())
        );
        assert!(matches!(
            t.render_limited("nope.tpl", &json!({}), 9),
            Err(TemplateError::NotFound { .. })
        ));
    }

    /// The contexts plugins build with [`json_value`] and [`Context`] render exactly as
    /// the same JSON given through serde (minijinja's own maps).
    #[test]
    fn converted_json_renders_as_serialized_json() {
        let big: serde_json::Map<String, serde_json::Value> =
            (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
        let ctx = json!({
            "m": {"b": 1, "a": [1, 2.5, "x", null, true, -7], "c": {"d": "e"}, "10": "ten"},
            "empty": {},
            "s": "a string longer than twenty-two bytes",
            "big": big,
        });
        let src = "{{ m }}|{{ m|length }}|{% for k in m %}{{ k }},{% endfor %}|\
            {% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}|{{ m|dictsort }}|\
            {{ m|items|list }}|{{ m.c.d }}{{ m['b'] }}{{ m[10] }}{{ m['10'] }}|\
            {{ 'a' in m }}{{ 'z' in m }}{{ m == m }}{{ m.c == {'d': 'e'} }}|{{ m|list }}|\
            {{ m.values()|list }}|{{ m|reverse|list }}|{{ m.get('z', 1) }}{{ m.has_key('c') }}|\
            {% if empty %}full{% else %}empty{% endif %}{{ empty }}|{{ s }}|\
            {{ big|length }}{{ big.k39 }}{{ big['k0'] }}|{{ m.a[1] }}{{ m.a|length }}{{ m.a|last }}|{{ nope }}";
        let t = Templates::new([TemplateDir::memory([("t.tpl", src)])]);
        let via_serde = t.render("t.tpl", &ctx);
        assert!(via_serde.is_ok(), "{via_serde:?}");
        let mut context = Context::from_json(ctx.as_object().unwrap_or(&big));
        assert_eq!(t.render_value("t.tpl", json_value(&ctx)), via_serde);
        assert_eq!(t.render_value("t.tpl", Value::from(context)), via_serde);
        // A plugin value replaces a raw config key in place.
        context = Context::from_json(ctx.as_object().unwrap_or(&big));
        context.set("s", "replaced");
        context.set("XX_new", 1);
        let t = Templates::new([TemplateDir::memory([(
            "t.tpl",
            "{% for k, v in m.items() %}{{ k }}{% endfor %} {{ s }}{{ XX_new }}",
        )])]);
        assert_eq!(
            t.render_value("t.tpl", Value::from(context)),
            Ok("bac10 replaced1".into())
        );
    }

    #[test]
    fn directories_refuse_escapes() {
        let dir = TemplateDir::Dir(PathBuf::from("/nonexistent-pbxkit"));
        assert_eq!(dir.load("../etc/passwd").ok(), Some(None));
        assert_eq!(dir.load("/etc/passwd").ok(), Some(None));
        assert_eq!(dir.load("base.tpl").ok(), Some(None));
    }
}
