//! `format_columns` templates: `"{firstname} {lastname}"`.
//!
//! A template is literal text with `{field}` placeholders; `{{` and `}}` are a literal
//! brace. Rendering replaces each placeholder by the field's value, or by nothing when
//! the contact has no such field, and trims the result. A template that does not parse
//! (an unclosed `{`, a lone `}`, an empty `{}`, a Python format spec or conversion such
//! as `{name:>10}` or `{name!r}`) is rejected with a [`TemplateError`] saying what and
//! where; a source keeps it as a column that renders no value, so that one bad line of
//! configuration costs one field, not the whole directory.
//!
//! ```
//! use std::collections::BTreeMap;
//! use pbxkit_directory::format::Template;
//!
//! let name = Template::parse("{firstname} {lastname}")?;
//! let fields = BTreeMap::from([("lastname".to_owned(), "Abrams".to_owned())]);
//! assert_eq!(name.render(&fields), "Abrams");
//! assert!(Template::parse("{firstname").is_err());
//! # Ok::<(), pbxkit_directory::format::TemplateError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

/// Why a template does not parse, and where (byte offset in the template).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed '{{' at byte {offset}")]
    Unclosed {
        /// Byte offset of the `{`.
        offset: usize,
    },
    /// A `}` that closes nothing (write `}}` for a literal brace).
    #[error("unmatched '}}' at byte {offset}")]
    Unmatched {
        /// Byte offset of the `}`.
        offset: usize,
    },
    /// `{}`: positional fields have no meaning for a contact.
    #[error("empty field name at byte {offset}")]
    EmptyField {
        /// Byte offset of the `{`.
        offset: usize,
    },
    /// A `{` inside a field name, a format spec (`:`) or a conversion (`!`).
    #[error("unsupported character {found:?} in a field name at byte {offset}")]
    Unsupported {
        /// The character.
        found: char,
        /// Byte offset of the character.
        offset: usize,
    },
}

impl TemplateError {
    /// Byte offset of the fault in the template.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Unclosed { offset }
            | Self::Unmatched { offset }
            | Self::EmptyField { offset }
            | Self::Unsupported { offset, .. } => offset,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

/// A parsed `format_columns` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    /// A [`TemplateError`] with the byte offset of the fault.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(TemplateError::Unmatched { offset }),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(TemplateError::Unclosed { offset }),
                            Some((_, '}')) => break,
                            Some((at, found @ ('{' | ':' | '!'))) => {
                                return Err(TemplateError::Unsupported { found, offset: at });
                            }
                            Some((_, c)) => name.push(c),
                        }
                    }
                    if name.is_empty() {
                        return Err(TemplateError::EmptyField { offset });
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(name));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self {
            source: template.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The field names the template refers to, in order of appearance.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Field(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Renders the template: a missing field renders empty, the result is trimmed.
    pub fn render(&self, fields: &BTreeMap<String, String>) -> String {
        self.render_with(|name| fields.get(name).map(String::as_str))
    }

    /// Renders the template, looking fields up with `lookup`.
    pub fn render_with<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(name) => out.push_str(lookup(name).unwrap_or("")),
            }
        }
        let trimmed = out.trim();
        if trimmed.len() == out.len() {
            out
        } else {
            trimmed.to_owned()
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A source's `format_columns`: output field → template, applied to every contact
/// the source returns. Templates that did not parse are kept with their error and
/// render no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatColumns {
    columns: Vec<(String, Result<Template, TemplateError>)>,
}

impl FormatColumns {
    /// Parses every template of a `format_columns` mapping.
    pub fn new<K, V>(columns: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: AsRef<str>,
    {
        Self {
            columns: columns
                .into_iter()
                .map(|(key, template)| (key.into(), Template::parse(template.as_ref())))
                .collect(),
        }
    }

    /// The columns whose template did not parse, with the reason.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &TemplateError)> {
        self.columns
            .iter()
            .filter_map(|(key, t)| t.as_ref().err().map(|e| (key.as_str(), e)))
    }

    /// Whether there is no column.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Adds the formatted columns to `fields`: each template is rendered against the
    /// fields as they were before (so columns do not see each other), a column that
    /// already exists is replaced, and a column with a broken template is removed.
    pub fn apply(&self, fields: &mut BTreeMap<String, String>) {
        if self.columns.is_empty() {
            return;
        }
        let rendered: Vec<(&str, Option<String>)> = self
            .columns
            .iter()
            .map(|(key, template)| {
                (
                    key.as_str(),
                    template.as_ref().ok().map(|t| t.render(fields)),
                )
            })
            .collect();
        for (key, value) in rendered {
            match value {
                Some(value) => {
                    fields.insert(key.to_owned(), value);
                }
                None => {
                    fields.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_fields_and_trims() {
        let t = Template::parse("{firstname} {lastname}").expect("valid");
        assert_eq!(
            t.render(&fields(&[("firstname", "Alice"), ("lastname", "Abrams")])),
            "Alice Abrams"
        );
        assert_eq!(t.render(&fields(&[("firstname", "Alice")])), "Alice");
        assert_eq!(t.render(&fields(&[])), "");
        assert_eq!(t.fields().collect::<Vec<_>>(), ["firstname", "lastname"]);
    }

    #[test]
    fn literal_braces_and_dotted_names() {
        let t = Template::parse("{{{phonebook.firstname}}} x").expect("valid");
        assert_eq!(
            t.render(&fields(&[("phonebook.firstname", "Bob")])),
            "{Bob} x"
        );
        assert_eq!(
            Template::parse("Répertoire")
                .expect("valid")
                .render(&fields(&[])),
            "Répertoire"
        );
    }

    #[test]
    fn broken_templates_say_where() {
        assert_eq!(
            Template::parse("ab{cd"),
            Err(TemplateError::Unclosed { offset: 2 })
        );
        assert_eq!(
            Template::parse("a}b"),
            Err(TemplateError::Unmatched { offset: 1 })
        );
        assert_eq!(
            Template::parse("x {}"),
            Err(TemplateError::EmptyField { offset: 2 })
        );
        assert_eq!(
            Template::parse("{n:>5}"),
            Err(TemplateError::Unsupported {
                found: ':',
                offset: 2
            })
        );
        assert_eq!(Template::parse("{n!r}").map_err(|e| e.offset()), Err(2));
        assert_eq!(Template::parse("{a{b}").map_err(|e| e.offset()), Err(2));
    }

    #[test]
    fn format_columns_replace_add_and_drop_broken() {
        let columns = FormatColumns::new([
            ("name", "{fn} {ln}"),
            ("fn", "{ln}"),
            ("bad", "{fn"),
            ("number", "{num}"),
        ]);
        assert_eq!(
            columns.errors().map(|(k, _)| k).collect::<Vec<_>>(),
            ["bad"]
        );
        let mut f = fields(&[("fn", "Alice"), ("ln", "Abrams"), ("bad", "kept?")]);
        columns.apply(&mut f);
        assert_eq!(f["name"], "Alice Abrams");
        assert_eq!(f["fn"], "Abrams");
        assert_eq!(f["number"], "");
        assert!(!f.contains_key("bad"));
    }
}
