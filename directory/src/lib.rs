//! # pbxkit-directory
//!
//! What wazo-dird does, as an embeddable crate: one lookup API over contact sources
//! (CSV, LDAP, personal contacts, internal users, phonebooks), reverse lookup of calling
//! numbers, `format_columns` templates and the XML directory views that desk phones request.
//!
//! Status: the crate is being built (see the project issues); this release has no API yet.
#![forbid(unsafe_code)]
