//! Directory views for desk phones: the XML (XHTML for Polycom) that Cisco, Yealink,
//! Snom, Polycom and Aastra phones request, with paging, and the search forms that ask
//! the user for a term.
//!
//! A [`PhoneDisplay`] (wazo-dird's `displays_phone`) turns contacts into
//! [`PhoneEntry`]s: the name is the first non-empty of the `name` fields; each `number`
//! item gives one entry with the first non-empty of its fields, named by its
//! `name_format` (`"{name} (Mobile)"`, with `{name}` and `{number}`). Entries are sorted
//! by name. [`render_results`] renders one page of them; [`render_input`] the search
//! form. Every value is XML-escaped and URLs are percent-encoded, so a contact named
//! `<Bob & "Co">` cannot break the document.
//!
//! ```
//! use pbxkit_directory::views::{render_results, Page, PhoneEntry, Vendor, ViewOptions};
//!
//! let entries = [PhoneEntry { name: "Alice & Co".into(), number: "1001".into() }];
//! let options = ViewOptions::new("http://pbx:9498/lookup/default/cisco", "al");
//! let xml = render_results(Vendor::Cisco, &entries, Page::first(16), &options);
//! assert!(xml.contains("<Name>Alice &amp; Co</Name>"));
//! ```

use std::fmt::Write as _;

use serde::Deserialize;

use crate::format::Template;
use crate::source::Contact;

/// A phone vendor's directory format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Vendor {
    /// `CiscoIPPhoneDirectory` / `CiscoIPPhoneInput`.
    Cisco,
    /// `YealinkIPPhoneDirectory` / `YealinkIPPhoneInputScreen`.
    Yealink,
    /// `SnomIPPhoneDirectory` / `SnomIPPhoneInput`.
    Snom,
    /// XHTML for the Polycom micro-browser (`tel://` links, a GET form).
    Polycom,
    /// `AastraIPPhoneTextMenu` / `AastraIPPhoneInputScreen`.
    Aastra,
}

impl Vendor {
    /// The most entries a page may have (Cisco phones accept 32 directory entries).
    pub fn max_entries(self) -> usize {
        match self {
            Self::Cisco | Self::Snom => 32,
            Self::Aastra => 30,
            Self::Yealink | Self::Polycom => 100,
        }
    }

    /// The media type of the documents.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Polycom => "application/xhtml+xml; charset=utf-8",
            _ => "text/xml; charset=utf-8",
        }
    }
}

/// One number item of a phone display.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NumberItem {
    /// Fields tried in order; the first non-empty one is the number.
    pub field: Vec<String>,
    /// How the entry is named, with `{name}` and `{number}`; the name when absent.
    #[serde(default)]
    pub name_format: Option<String>,
}

/// How contacts become phone entries (wazo-dird's `displays_phone`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneDisplay {
    /// Fields tried in order for the name.
    pub name: Vec<String>,
    /// One entry per item that has a number.
    pub number: Vec<NumberItem>,
}

impl Default for PhoneDisplay {
    /// `name: [display_name, name]`, numbers `phone` and the suffixed `phone_office`,
    /// `phone_mobile`, `phone_home`, `phone_other`, then `number`.
    fn default() -> Self {
        let item = |field: &str, suffix: Option<&str>| NumberItem {
            field: vec![field.to_owned()],
            name_format: suffix.map(|s| format!("{{name}} ({s})")),
        };
        Self {
            name: vec!["display_name".to_owned(), "name".to_owned()],
            number: vec![
                item("phone", None),
                item("phone_office", Some("Office")),
                item("phone_mobile", Some("Mobile")),
                item("phone_home", Some("Home")),
                item("phone_other", Some("Other")),
                item("number", None),
            ],
        }
    }
}

/// A name and a number to dial.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhoneEntry {
    /// What the phone shows.
    pub name: String,
    /// What the phone dials.
    pub number: String,
}

fn first_non_empty<'a>(contact: &'a Contact, fields: &[String]) -> Option<&'a str> {
    fields
        .iter()
        .filter_map(|field| contact.get(field))
        .map(str::trim)
        .find(|value| !value.is_empty())
}

impl PhoneDisplay {
    /// The entries of `contacts`, sorted by name (case-insensitively, then by number),
    /// without duplicates. A `name_format` that does not parse names the entry with
    /// the plain name.
    pub fn entries<'a>(&self, contacts: impl IntoIterator<Item = &'a Contact>) -> Vec<PhoneEntry> {
        let formats: Vec<Option<Template>> = self
            .number
            .iter()
            .map(|item| {
                item.name_format
                    .as_deref()
                    .and_then(|f| Template::parse(f).ok())
            })
            .collect();
        let mut entries = Vec::new();
        for contact in contacts {
            let name = first_non_empty(contact, &self.name).unwrap_or("");
            for (item, format) in self.number.iter().zip(&formats) {
                let Some(number) = first_non_empty(contact, &item.field) else {
                    continue;
                };
                let name = match format {
                    Some(format) => format.render_with(|key| match key {
                        "name" => Some(name),
                        "number" => Some(number),
                        _ => None,
                    }),
                    None => name.to_owned(),
                };
                entries.push(PhoneEntry {
                    name,
                    number: number.to_owned(),
                });
            }
        }
        entries.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.cmp(b))
        });
        entries.dedup();
        entries
    }
}

/// Which slice of the entries a document shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Entries skipped.
    pub offset: usize,
    /// Entries shown at most (clamped to 1..=[`Vendor::max_entries`]).
    pub limit: usize,
}

impl Page {
    /// The first page of `limit` entries.
    pub fn first(limit: usize) -> Self {
        Self { offset: 0, limit }
    }
}

/// Labels and links of the documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewOptions {
    /// The URL the phone requests for results (the search form submits to it, paging
    /// links add `term`, `limit` and `offset` to it).
    pub url: String,
    /// The term searched (repeated in paging links).
    pub term: String,
    /// Document title.
    pub title: String,
    /// The search form's prompt.
    pub prompt: String,
    /// Labels of the soft keys: dial, previous, next, exit, search.
    pub labels: Labels,
}

/// Soft-key labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Dial the selected entry.
    pub dial: String,
    /// Previous page.
    pub previous: String,
    /// Next page.
    pub next: String,
    /// Leave the directory.
    pub exit: String,
    /// Submit the search form.
    pub search: String,
    /// The search field's name.
    pub name: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            dial: "Dial".to_owned(),
            previous: "Previous".to_owned(),
            next: "Next".to_owned(),
            exit: "Exit".to_owned(),
            search: "Search".to_owned(),
            name: "Name".to_owned(),
        }
    }
}

impl ViewOptions {
    /// English labels, title "Directory", for `url` and `term`.
    pub fn new(url: impl Into<String>, term: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            term: term.into(),
            title: "Directory".to_owned(),
            prompt: "Name or number".to_owned(),
            labels: Labels::default(),
        }
    }

    fn page_url(&self, page: Page) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}term={}&limit={}&offset={}",
            self.url,
            percent_encode(&self.term),
            page.limit,
            page.offset
        )
    }
}

/// Escapes text for XML content and attribute values; drops the characters XML 1.0
/// does not allow.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Renders one page of `entries` in `vendor`'s directory format, with links to the
/// previous and next pages when there are some.
pub fn render_results(
    vendor: Vendor,
    entries: &[PhoneEntry],
    page: Page,
    options: &ViewOptions,
) -> String {
    let limit = page.limit.clamp(1, vendor.max_entries());
    let offset = page.offset.min(entries.len());
    let end = offset.saturating_add(limit).min(entries.len());
    let shown = entries.get(offset..end).unwrap_or(&[]);
    let previous = (offset > 0).then(|| {
        options.page_url(Page {
            offset: offset.saturating_sub(limit),
            limit,
        })
    });
    let next = (end < entries.len()).then(|| options.page_url(Page { offset: end, limit }));
    let e = xml_escape;
    let labels = &options.labels;
    let title = e(&options.title);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    match vendor {
        Vendor::Cisco | Vendor::Snom | Vendor::Yealink => {
            let root = match vendor {
                Vendor::Cisco => "CiscoIPPhoneDirectory",
                Vendor::Snom => "SnomIPPhoneDirectory",
                _ => "YealinkIPPhoneDirectory",
            };
            let _ = writeln!(out, "<{root}>\n<Title>{title}</Title>");
            let _ = writeln!(
                out,
                "<Prompt>{}-{} / {}</Prompt>",
                if shown.is_empty() { offset } else { offset + 1 },
                end,
                entries.len()
            );
            for entry in shown {
                let _ = writeln!(
                    out,
                    "<DirectoryEntry>\n<Name>{}</Name>\n<Telephone>{}</Telephone>\n</DirectoryEntry>",
                    e(&entry.name),
                    e(&entry.number)
                );
            }
            let mut keys: Vec<(&str, String)> = Vec::new();
            if vendor == Vendor::Cisco {
                keys.push((&labels.dial, "SoftKey:Dial".to_owned()));
            }
            if let Some(url) = &previous {
                keys.push((&labels.previous, url.clone()));
            }
            if let Some(url) = &next {
                keys.push((&labels.next, url.clone()));
            }
            if vendor == Vendor::Cisco {
                keys.push((&labels.exit, "SoftKey:Exit".to_owned()));
            }
            for (position, (label, url)) in keys.iter().enumerate() {
                let position = position + 1;
                let (label, url) = (e(label), e(url));
                let _ = match vendor {
                    Vendor::Cisco => writeln!(
                        out,
                        "<SoftKeyItem>\n<Name>{label}</Name>\n<URL>{url}</URL>\n<Position>{position}</Position>\n</SoftKeyItem>"
                    ),
                    Vendor::Snom => writeln!(
                        out,
                        "<SoftKeyItem>\n<Name>F{position}</Name>\n<Label>{label}</Label>\n<URL>{url}</URL>\n</SoftKeyItem>"
                    ),
                    _ => writeln!(
                        out,
                        "<SoftKey index=\"{position}\">\n<Label>{label}</Label>\n<URI>{url}</URI>\n</SoftKey>"
                    ),
                };
            }
            let _ = writeln!(out, "</{root}>");
        }
        Vendor::Aastra => {
            let _ = writeln!(
                out,
                "<AastraIPPhoneTextMenu destroyOnExit=\"yes\" style=\"none\">\n<Title>{title}</Title>"
            );
            for entry in shown {
                let _ = writeln!(
                    out,
                    "<MenuItem>\n<Prompt>{}</Prompt>\n<URI>Dial:{}</URI>\n</MenuItem>",
                    e(&entry.name),
                    e(&entry.number)
                );
            }
            for (label, url) in [(&labels.previous, &previous), (&labels.next, &next)] {
                if let Some(url) = url {
                    let _ = writeln!(
                        out,
                        "<MenuItem>\n<Prompt>{}</Prompt>\n<URI>{}</URI>\n</MenuItem>",
                        e(label),
                        e(url)
                    );
                }
            }
            let _ = writeln!(out, "</AastraIPPhoneTextMenu>");
        }
        Vendor::Polycom => {
            let _ = writeln!(out, "<html>\n<head><title>{title}</title></head>\n<body>");
            for entry in shown {
                let _ = writeln!(
                    out,
                    "<a href=\"tel://{}\">{}</a><br/>",
                    e(&percent_encode(&entry.number)),
                    e(&entry.name)
                );
            }
            for (label, url) in [(&labels.previous, &previous), (&labels.next, &next)] {
                if let Some(url) = url {
                    let _ = writeln!(out, "<a href=\"{}\">{}</a><br/>", e(url), e(label));
                }
            }
            let _ = writeln!(out, "</body>\n</html>");
        }
    }
    out
}

/// Renders the search form of `vendor`: one text field named `term`, submitted to
/// `options.url`.
pub fn render_input(vendor: Vendor, options: &ViewOptions) -> String {
    let e = xml_escape;
    let (title, prompt, url) = (e(&options.title), e(&options.prompt), e(&options.url));
    let name = e(&options.labels.name);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = match vendor {
        Vendor::Cisco | Vendor::Snom => {
            let (root, flags) = if vendor == Vendor::Cisco {
                ("CiscoIPPhoneInput", "A")
            } else {
                ("SnomIPPhoneInput", "a")
            };
            writeln!(
                out,
                "<{root}>\n<Title>{title}</Title>\n<Prompt>{prompt}</Prompt>\n<URL>{url}</URL>\n<InputItem>\n<DisplayName>{name}</DisplayName>\n<QueryStringParam>term</QueryStringParam>\n<DefaultValue></DefaultValue>\n<InputFlags>{flags}</InputFlags>\n</InputItem>\n</{root}>"
            )
        }
        Vendor::Yealink => writeln!(
            out,
            "<YealinkIPPhoneInputScreen type=\"string\">\n<Title>{title}</Title>\n<URL>{url}</URL>\n<InputField type=\"string\">\n<Prompt>{prompt}</Prompt>\n<Parameter>term</Parameter>\n<Default></Default>\n</InputField>\n</YealinkIPPhoneInputScreen>"
        ),
        Vendor::Aastra => writeln!(
            out,
            "<AastraIPPhoneInputScreen type=\"string\" destroyOnExit=\"yes\">\n<Title>{title}</Title>\n<Prompt>{prompt}</Prompt>\n<URL>{url}</URL>\n<Parameter>term</Parameter>\n<Default></Default>\n</AastraIPPhoneInputScreen>"
        ),
        Vendor::Polycom => writeln!(
            out,
            "<html>\n<head><title>{title}</title></head>\n<body>\n<form method=\"get\" action=\"{url}\">\n{prompt}<br/>\n<input type=\"text\" name=\"term\"/>\n<input type=\"submit\" value=\"{}\"/>\n</form>\n</body>\n</html>",
            e(&options.labels.search)
        ),
    };
    out
}
