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

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};

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
        let dirs: Vec<TemplateDir> = dirs.into_iter().collect();
        let mut env = Environment::new();
        env.set_loader(move |name| {
            for dir in &dirs {
                if let Some(source) = dir.load(name)? {
                    return Ok(Some(source));
                }
            }
            Ok(None)
        });
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_debug(false);
        env.add_filter("e", escape);
        env.add_filter("escape", escape);
        env.set_unknown_method_callback(python_methods);
        env.set_formatter(|out, _state, value| {
            let text = match value.kind() {
                ValueKind::Undefined => return Ok(()),
                ValueKind::None => "None",
                ValueKind::Bool if value.is_true() => "True",
                ValueKind::Bool => "False",
                _ => return write!(out, "{value}").map_err(Error::from),
            };
            out.write_str(text).map_err(Error::from)
        });
        Self { env }
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
        let context = context_value(context)?;
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

    /// Forgets the templates loaded so far, so that changed files are read again.
    pub fn reload(&mut self) {
        self.env.clear_templates();
    }

    /// Whether a template of this name exists.
    pub fn exists(&self, name: &str) -> Result<bool, TemplateError> {
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
        let template = self.env.get_template(name).map_err(|e| {
            if e.kind() == ErrorKind::TemplateNotFound && e.name().is_none_or(|n| n == name) {
                TemplateError::NotFound {
                    tried: vec![name.to_owned()],
                }
            } else {
                TemplateError::from_minijinja(&e, name)
            }
        })?;
        let context = context_value(context)?;
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
        let by_file = format!("{file}.tpl");
        let by_model = model.map(|m| format!("{m}.tpl"));
        let mut names = vec![by_file.as_str()];
        names.extend(by_model.as_deref());
        names.push("base.tpl");
        let name = self.select(&names)?;
        self.render(name, context)
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

fn context_value(context: &impl serde::Serialize) -> Result<Value, TemplateError> {
    // `Serde` reports a failed serialization as an invalid value; check it up front to
    // return a typed error instead.
    serde_json::to_value(context).map_err(|e| TemplateError::Context(e.to_string()))?;
    Ok(Value::from(Serde(context)))
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

    #[test]
    fn directories_refuse_escapes() {
        let dir = TemplateDir::Dir(PathBuf::from("/nonexistent-pbxkit"));
        assert_eq!(dir.load("../etc/passwd").ok(), Some(None));
        assert_eq!(dir.load("/etc/passwd").ok(), Some(None));
        assert_eq!(dir.load("base.tpl").ok(), Some(None));
    }
}
