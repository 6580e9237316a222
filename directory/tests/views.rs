//! Phone views: golden documents for every vendor, paging links, escaping.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::sync::Arc;

use pbxkit_directory::Contact;
use pbxkit_directory::views::{
    Page, PhoneDisplay, PhoneEntry, Vendor, ViewOptions, render_input, render_results, xml_escape,
};

fn entry(name: &str, number: &str) -> PhoneEntry {
    PhoneEntry {
        name: name.into(),
        number: number.into(),
    }
}

fn entries() -> Vec<PhoneEntry> {
    vec![
        entry("Alice", "1001"),
        entry("Bob <B&B>", "1002"),
        entry("Carl \"C\"", "1003"),
    ]
}

fn options() -> ViewOptions {
    ViewOptions::new(
        "http://pbx:9498/0.1/directories/lookup/default/cisco",
        "a b&c",
    )
}

const CISCO_PAGE_2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CiscoIPPhoneDirectory>
<Title>Directory</Title>
<Prompt>2-2 / 3</Prompt>
<DirectoryEntry>
<Name>Bob &lt;B&amp;B&gt;</Name>
<Telephone>1002</Telephone>
</DirectoryEntry>
<SoftKeyItem>
<Name>Dial</Name>
<URL>SoftKey:Dial</URL>
<Position>1</Position>
</SoftKeyItem>
<SoftKeyItem>
<Name>Previous</Name>
<URL>http://pbx:9498/0.1/directories/lookup/default/cisco?term=a%20b%26c&amp;limit=1&amp;offset=0</URL>
<Position>2</Position>
</SoftKeyItem>
<SoftKeyItem>
<Name>Next</Name>
<URL>http://pbx:9498/0.1/directories/lookup/default/cisco?term=a%20b%26c&amp;limit=1&amp;offset=2</URL>
<Position>3</Position>
</SoftKeyItem>
<SoftKeyItem>
<Name>Exit</Name>
<URL>SoftKey:Exit</URL>
<Position>4</Position>
</SoftKeyItem>
</CiscoIPPhoneDirectory>
"#;

#[test]
fn cisco_results_with_paging() {
    let xml = render_results(
        Vendor::Cisco,
        &entries(),
        Page {
            offset: 1,
            limit: 1,
        },
        &options(),
    );
    assert_eq!(xml, CISCO_PAGE_2);
}

#[test]
fn yealink_snom_aastra_polycom_results() {
    let page = Page::first(2);
    assert_eq!(
        render_results(Vendor::Yealink, &entries(), page, &options()),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<YealinkIPPhoneDirectory>
<Title>Directory</Title>
<Prompt>1-2 / 3</Prompt>
<DirectoryEntry>
<Name>Alice</Name>
<Telephone>1001</Telephone>
</DirectoryEntry>
<DirectoryEntry>
<Name>Bob &lt;B&amp;B&gt;</Name>
<Telephone>1002</Telephone>
</DirectoryEntry>
<SoftKey index="1">
<Label>Next</Label>
<URI>http://pbx:9498/0.1/directories/lookup/default/cisco?term=a%20b%26c&amp;limit=2&amp;offset=2</URI>
</SoftKey>
</YealinkIPPhoneDirectory>
"#
    );
    assert_eq!(
        render_results(
            Vendor::Snom,
            &entries(),
            Page {
                offset: 2,
                limit: 2
            },
            &options()
        ),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SnomIPPhoneDirectory>
<Title>Directory</Title>
<Prompt>3-3 / 3</Prompt>
<DirectoryEntry>
<Name>Carl &quot;C&quot;</Name>
<Telephone>1003</Telephone>
</DirectoryEntry>
<SoftKeyItem>
<Name>F1</Name>
<Label>Previous</Label>
<URL>http://pbx:9498/0.1/directories/lookup/default/cisco?term=a%20b%26c&amp;limit=2&amp;offset=0</URL>
</SoftKeyItem>
</SnomIPPhoneDirectory>
"#
    );
    assert_eq!(
        render_results(Vendor::Aastra, &entries()[..1], page, &options()),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<AastraIPPhoneTextMenu destroyOnExit="yes" style="none">
<Title>Directory</Title>
<MenuItem>
<Prompt>Alice</Prompt>
<URI>Dial:1001</URI>
</MenuItem>
</AastraIPPhoneTextMenu>
"#
    );
    assert_eq!(
        render_results(Vendor::Polycom, &[entry("A&B", "+331")], page, &options()),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<html>
<head><title>Directory</title></head>
<body>
<a href="tel://%2B331">A&amp;B</a><br/>
</body>
</html>
"#
    );
}

#[test]
fn search_forms() {
    let mut options = options();
    options.title = "Annuaire <XiVO>".into();
    assert_eq!(
        render_input(Vendor::Cisco, &options),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CiscoIPPhoneInput>
<Title>Annuaire &lt;XiVO&gt;</Title>
<Prompt>Name or number</Prompt>
<URL>http://pbx:9498/0.1/directories/lookup/default/cisco</URL>
<InputItem>
<DisplayName>Name</DisplayName>
<QueryStringParam>term</QueryStringParam>
<DefaultValue></DefaultValue>
<InputFlags>A</InputFlags>
</InputItem>
</CiscoIPPhoneInput>
"#
    );
    assert_eq!(
        render_input(Vendor::Yealink, &options),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<YealinkIPPhoneInputScreen type="string">
<Title>Annuaire &lt;XiVO&gt;</Title>
<URL>http://pbx:9498/0.1/directories/lookup/default/cisco</URL>
<InputField type="string">
<Prompt>Name or number</Prompt>
<Parameter>term</Parameter>
<Default></Default>
</InputField>
</YealinkIPPhoneInputScreen>
"#
    );
    assert!(
        render_input(Vendor::Snom, &options)
            .contains("<SnomIPPhoneInput>\n<Title>Annuaire &lt;XiVO&gt;</Title>")
    );
    assert!(render_input(Vendor::Snom, &options).contains("<InputFlags>a</InputFlags>"));
    assert!(render_input(Vendor::Aastra, &options).contains("<Parameter>term</Parameter>"));
    assert!(render_input(Vendor::Polycom, &options).contains(
        r#"<form method="get" action="http://pbx:9498/0.1/directories/lookup/default/cisco">"#
    ));
}

#[test]
fn pages_are_clamped_and_out_of_range_is_empty() {
    let many: Vec<PhoneEntry> = (0..100)
        .map(|i| entry(&format!("N{i:03}"), &format!("{i}")))
        .collect();
    let xml = render_results(Vendor::Cisco, &many, Page::first(1000), &options());
    assert_eq!(xml.matches("<DirectoryEntry>").count(), 32);
    assert!(xml.contains("limit=32&amp;offset=32"));
    let xml = render_results(
        Vendor::Cisco,
        &many,
        Page {
            offset: usize::MAX,
            limit: 0,
        },
        &options(),
    );
    assert_eq!(xml.matches("<DirectoryEntry>").count(), 0);
    assert!(xml.contains("<Prompt>100-100 / 100</Prompt>"));
}

#[test]
fn escaping_drops_invalid_characters() {
    assert_eq!(xml_escape("a\u{0}b\u{1b}c\td'"), "abc\td&apos;");
}

#[test]
fn phone_display_fallbacks_and_name_format() {
    let contact = |pairs: &[(&str, &str)]| Contact {
        source: Arc::from("s"),
        id: None,
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    };
    let contacts = [
        contact(&[
            ("display_name", ""),
            ("name", "bob"),
            ("phone", "101"),
            ("phone_mobile", "102"),
        ]),
        contact(&[
            ("display_name", "Alice"),
            ("phone", "201"),
            ("phone_office", "201"),
        ]),
        contact(&[("name", "Nobody")]),
    ];
    let entries = PhoneDisplay::default().entries(&contacts);
    assert_eq!(
        entries,
        [
            entry("Alice", "201"),
            entry("Alice (Office)", "201"),
            entry("bob", "101"),
            entry("bob (Mobile)", "102")
        ]
    );
}
