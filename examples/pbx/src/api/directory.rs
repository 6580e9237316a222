//! The directory service (wazo-dird's): lookups and reverse lookups over the PBX's
//! own users (source `internal`) and the `[[directories]]` CSV files, and the XML
//! views desk phones load from their directory key.
//!
//! One profile, `default`, searches every source (the users first) with a
//! two-second deadline: a slow source is left out of the answer, not waited for.
//! The phone views need no token (a phone can't send one): they show only names
//! and numbers, and the API listens on loopback unless the operator opens it to the
//! phones' network.

use super::{Answer, ApiError, Shared};
use crate::config::Config;
use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use pbxkit_directory::format::FormatColumns;
use pbxkit_directory::lookup::{Column, ColumnType, Directory, Display, Profile};
use pbxkit_directory::views::{self, Page, PhoneDisplay, Vendor, ViewOptions};
use pbxkit_directory::{MemorySource, NumberPlan, QueryContext, SourceConfig};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The one profile.
pub(crate) const PROFILE: &str = "default";
/// The source of the PBX's users.
const INTERNAL: &str = "internal";
/// How long a lookup waits for its sources.
const DEADLINE: Duration = Duration::from_secs(2);
/// Longest term searched.
const MAX_TERM: usize = 100;

/// Lookups sleep on tokio's clock.
struct TokioSleep;

impl pbxkit_directory::Timer for TokioSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The directory of `config`: its users, then its CSV sources.
pub(crate) fn build(config: &Config) -> Result<Directory, String> {
    let plan = NumberPlan::default();
    let internal = SourceConfig {
        searched_columns: vec!["name".into(), "exten".into()],
        first_matched_columns: vec!["exten".into()],
        unique_column: Some("exten".into()),
        format_columns: FormatColumns::new([("number", "{exten}")]),
        ..SourceConfig::named(INTERNAL)
    };
    let users = config.users.iter().map(|u| {
        BTreeMap::from([
            ("exten".to_owned(), u.exten.clone()),
            ("name".to_owned(), u.name.clone()),
        ])
    });
    let internal = MemorySource::new(internal, plan.clone(), users.collect::<Vec<_>>());
    let mut directory = Directory::with_timer(Arc::new(TokioSleep));
    directory.add_source(Arc::new(internal));
    let mut names = vec![INTERNAL.to_owned()];
    for csv in &config.directories {
        let name = csv.source.name.clone();
        if name.is_empty() || names.contains(&name) {
            return Err(format!(
                "directories: {name:?}: each source needs its own name (\"{INTERNAL}\" is the users')"
            ));
        }
        let source = pbxkit_directory::CsvSource::new(csv.clone(), plan.clone())
            .map_err(|e| format!("directories: {name}: {e}"))?;
        directory.add_source(Arc::new(source));
        names.push(name);
    }
    directory.add_display(
        "default",
        Display::new(vec![
            Column::new("Name", ColumnType::Name, "name"),
            Column::new("Number", ColumnType::Number, "number"),
        ]),
    );
    let mut profile = Profile::new(names, "default");
    profile.timeout = Some(DEADLINE);
    directory
        .add_profile(PROFILE, profile)
        .map_err(|e| format!("directories: {e}"))?;
    Ok(directory)
}

fn term(params: &HashMap<String, String>) -> Result<String, ApiError> {
    let term = params.get("term").map(|t| t.trim()).unwrap_or_default();
    if term.is_empty() || term.chars().count() > MAX_TERM {
        return Err(ApiError::invalid(
            "term",
            format!("1 to {MAX_TERM} characters"),
        ));
    }
    Ok(term.to_owned())
}

fn profile_known(profile: &str) -> Result<(), ApiError> {
    if profile == PROFILE {
        Ok(())
    } else {
        Err(ApiError::not_found("profile", profile))
    }
}

/// `GET /directories/lookup/{profile}?term=`: wazo-dird's answer, rows of the
/// display's columns.
pub(super) async fn lookup(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(profile): Path<String>,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    let token = api.token(&headers)?;
    profile_known(&profile)?;
    super::require(&token, &format!("dird.directories.lookup.{profile}.read"))?;
    let term = term(&params)?;
    let directory = api.directory();
    let ctx = token
        .user
        .as_deref()
        .map(QueryContext::user)
        .unwrap_or_default();
    let found = directory
        .lookup(&profile, &term, &ctx)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let results: Vec<_> = found
        .rows
        .iter()
        .map(|row| {
            json!({
                "column_values": row.values,
                "source": row.contact.source.as_ref(),
                "id": row.contact.id,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "term": term,
        "column_headers": found.headers.iter().map(|h| h.title.clone()).collect::<Vec<_>>(),
        "results": results,
        "timed_out": found.timed_out,
        "failed": found.failed.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /directories/reverse/{profile}/{user}?exten=`: the contact a number
/// belongs to, for `user`'s screen.
pub(super) async fn reverse(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path((profile, user)): Path<(String, String)>,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    profile_known(&profile)?;
    let (_, _, user) = api.user_route(&headers, &user, |u| {
        format!("dird.directories.reverse.{profile}.{u}.read")
    })?;
    let exten = params.get("exten").map(|e| e.trim()).unwrap_or_default();
    if exten.is_empty() || exten.len() > 40 {
        return Err(ApiError::invalid("exten", "a number of 1 to 40 characters"));
    }
    let directory = api.directory();
    let found = directory
        .reverse(&profile, exten, &QueryContext::user(user))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(contact) = found else {
        return Err(ApiError::not_found("contact", exten));
    };
    let display = contact
        .get("name")
        .or_else(|| contact.get("display_name"))
        .map(str::to_owned);
    Ok(axum::Json(json!({
        "exten": exten,
        "display": display,
        "source": contact.source.as_ref(),
        "fields": contact.fields,
    }))
    .into_response())
}

fn vendor(name: &str) -> Result<Vendor, ApiError> {
    serde_json::from_value(json!(name)).map_err(|_| ApiError::not_found("vendor", name))
}

/// The phone view's own URL, for its search form and paging links.
fn view_url(headers: &HeaderMap, profile: &str, vendor: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}/directories/lookup/{profile}/{vendor}")
}

/// `GET /directories/input/{profile}/{vendor}`: the search form a phone shows.
pub(super) async fn phone_input(
    headers: HeaderMap,
    Path((profile, vendor_name)): Path<(String, String)>,
) -> Answer {
    profile_known(&profile)?;
    let vendor = vendor(&vendor_name)?;
    let options = ViewOptions::new(view_url(&headers, &profile, &vendor_name), "");
    let body = views::render_input(vendor, &options);
    Ok(([(header::CONTENT_TYPE, vendor.content_type())], body).into_response())
}

/// `GET /directories/lookup/{profile}/{vendor}?term=`: one page of results in the
/// phone's format.
pub(super) async fn phone_results(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path((profile, vendor_name)): Path<(String, String)>,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    profile_known(&profile)?;
    let vendor = vendor(&vendor_name)?;
    let term = term(&params)?;
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::invalid(name, "must be a non-negative integer"))
        })
    };
    let page = Page {
        offset: number("offset", 0)?,
        limit: number("limit", vendor.max_entries())?,
    };
    let found = api
        .directory()
        .lookup(&profile, &term, &QueryContext::default())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let entries = PhoneDisplay {
        name: vec!["name".to_owned()],
        number: vec![views::NumberItem {
            field: vec!["number".to_owned()],
            name_format: None,
        }],
    }
    .entries(found.rows.iter().map(|r| &r.contact));
    let options = ViewOptions::new(view_url(&headers, &profile, &vendor_name), term);
    let body = views::render_results(vendor, &entries, page, &options);
    Ok(([(header::CONTENT_TYPE, vendor.content_type())], body).into_response())
}
