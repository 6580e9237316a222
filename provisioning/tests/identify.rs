//! Identification from real `User-Agent` strings, file names and DHCP vendor classes.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_provisioning::identify::{
    DeviceInfo, from_dhcp_vendor_class, from_filename, from_user_agent,
};

fn info(ua: &str) -> (String, String, String, Option<String>) {
    let DeviceInfo {
        vendor,
        model,
        version,
        mac,
        ..
    } = from_user_agent(ua).unwrap_or_else(|| panic!("not identified: {ua}"));
    (
        vendor.unwrap_or_default(),
        model.unwrap_or_default(),
        version.unwrap_or_default(),
        mac.map(|m| m.to_string()),
    )
}

fn check(ua: &str, vendor: &str, model: &str, version: &str, mac: Option<&str>) {
    assert_eq!(
        info(ua),
        (
            vendor.to_owned(),
            model.to_owned(),
            version.to_owned(),
            mac.map(str::to_owned)
        ),
        "{ua}"
    );
}

#[test]
fn yealink() {
    check(
        "Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33",
        "Yealink",
        "T46S",
        "66.84.0.15",
        Some("80:5e:c0:11:22:33"),
    );
    check(
        "Yealink SIP-T23G 44.84.0.140 00:15:65:AA:BB:CC",
        "Yealink",
        "T23G",
        "44.84.0.140",
        Some("00:15:65:aa:bb:cc"),
    );
    check(
        "Yealink W52P 25.73.0.40 00:15:65:12:34:56",
        "Yealink",
        "W52P",
        "25.73.0.40",
        Some("00:15:65:12:34:56"),
    );
    check(
        "Yealink SIP VP-T49G 51.80.0.100 00:15:65:00:00:01",
        "Yealink",
        "T49G",
        "51.80.0.100",
        Some("00:15:65:00:00:01"),
    );
    check(
        "yealink SIP-T54W 96.85.0.5",
        "Yealink",
        "T54W",
        "96.85.0.5",
        None,
    );
}

#[test]
fn snom() {
    check(
        "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 SPEEX/1.2.0 SRTP/2.4.0)",
        "Snom",
        "D785",
        "10.1.33.33",
        None,
    );
    check(
        "Mozilla/4.0 (compatible; snom320-SIP 8.4.35 1.1.3-n)",
        "Snom",
        "320",
        "8.4.35",
        None,
    );
    check(
        "Mozilla/4.0 (compatible; snom760-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413ABCDEF)",
        "Snom",
        "760",
        "8.7.5.35",
        Some("00:04:13:ab:cd:ef"),
    );
}

#[test]
fn polycom() {
    check(
        "FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373",
        "Polycom",
        "VVX400",
        "5.9.0.9373",
        None,
    );
    check(
        "FileTransport PolycomSoundPointIP-SPIP_335-UA/4.0.4.2906",
        "Polycom",
        "SPIP335",
        "4.0.4.2906",
        None,
    );
    check(
        "FileTransport PolycomRealPresenceTrio-Trio_8800-UA/5.7.1.4145 (SN:0004f2aabbcc) Type/Application",
        "Polycom",
        "Trio8800",
        "5.7.1.4145",
        Some("00:04:f2:aa:bb:cc"),
    );
}

#[test]
fn aastra_mitel() {
    check(
        "Aastra6867i MAC:00-08-5D-11-22-33 V:4.3.0.2036-SIP",
        "Aastra",
        "6867i",
        "4.3.0.2036",
        Some("00:08:5d:11:22:33"),
    );
    check(
        "Aastra6731i MAC:00-08-5D-23-74-29 V:3.2.2.1136-SIP",
        "Aastra",
        "6731i",
        "3.2.2.1136",
        Some("00:08:5d:23:74:29"),
    );
    check(
        "Mitel6869i MAC:00-08-5D-AA-BB-CC V:5.1.0.2030-SIP",
        "Aastra",
        "6869i",
        "5.1.0.2030",
        Some("00:08:5d:aa:bb:cc"),
    );
}

#[test]
fn cisco_spa() {
    // Ten hex digits are not a MAC: the rest is kept, the MAC dropped.
    check(
        "Cisco/SPA504G-7.6.2b (00112233ab)(CCQ162306EA)",
        "Cisco",
        "SPA504G",
        "7.6.2b",
        None,
    );
    check(
        "Cisco/SPA508G-7.4.9a (0018B9FFFFFF)(CBT141200HS)",
        "Cisco",
        "SPA508G",
        "7.4.9a",
        Some("00:18:b9:ff:ff:ff"),
    );
    check(
        "Linksys/SPA942-6.1.5a (4MM00F602447)",
        "Cisco",
        "SPA942",
        "6.1.5a",
        None,
    );
}

#[test]
fn grandstream() {
    check(
        "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82112233",
        "Grandstream",
        "GXP2170",
        "1.0.11.3",
        Some("00:0b:82:11:22:33"),
    );
    check(
        "Grandstream Model HW GXP1625 SW 1.0.4.128 DevId 000b82aabbcc",
        "Grandstream",
        "GXP1625",
        "1.0.4.128",
        Some("00:0b:82:aa:bb:cc"),
    );
    check(
        "Grandstream Model HW GXV3275 V1.4A SW 1.0.3.219 DevId 000b82000001",
        "Grandstream",
        "GXV3275",
        "1.0.3.219",
        Some("00:0b:82:00:00:01"),
    );
}

#[test]
fn unknown_agents() {
    for ua in [
        "",
        "curl/8.0",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "Yealink",
        "Aastra6867i MAC:00-08-5D V:1-SIP",
    ] {
        assert_eq!(from_user_agent(ua), None, "{ua}");
    }
}

#[test]
fn file_names() {
    let f =
        |name: &str| from_filename(name).map(|i| (i.vendor, i.model, i.mac.map(|m| m.to_string())));
    let mac = Some("00:11:22:aa:bb:cc".to_owned());
    assert_eq!(
        f("SEP001122AABBCC.cnf.xml"),
        Some((Some("Cisco".into()), None, mac.clone()))
    );
    assert_eq!(
        f("/tftpboot/SIP001122AABBCC.cnf"),
        Some((Some("Cisco".into()), None, mac.clone()))
    );
    assert_eq!(
        f("spa001122aabbcc.xml"),
        Some((Some("Cisco".into()), None, mac.clone()))
    );
    assert_eq!(
        f("snomD785-001122AABBCC.htm"),
        Some((Some("Snom".into()), Some("D785".into()), mac.clone()))
    );
    assert_eq!(f("001122aabbcc.cfg"), Some((None, None, mac.clone())));
    assert_eq!(f("001122AABBCC.cfg"), Some((None, None, mac.clone())));
    assert_eq!(f("001122aabbcc-phone.cfg"), Some((None, None, mac)));
    for name in [
        "000000000000.cfg",
        "y000000000028.cfg",
        "SEPdefault.cnf.xml",
        "",
        "a/b/",
        "001122aabbcc.cfg.bak",
    ] {
        assert_eq!(f(name), None, "{name}");
    }
}

#[test]
fn dhcp_vendor_classes() {
    let f = |vci: &str| {
        from_dhcp_vendor_class(vci).map(|i| (i.vendor.unwrap_or_default(), i.model, i.version))
    };
    assert_eq!(
        f("digium_D40_1_1_0_0_48178"),
        Some((
            "Digium".into(),
            Some("D40".into()),
            Some("1.1.0.0.48178".into())
        ))
    );
    assert_eq!(
        f("AastraIPPhone6867i"),
        Some(("Aastra".into(), Some("6867i".into()), None))
    );
    assert_eq!(
        f("snomD785"),
        Some(("Snom".into(), Some("D785".into()), None))
    );
    assert_eq!(
        f("Polycom-VVX400"),
        Some(("Polycom".into(), Some("VVX400".into()), None))
    );
    assert_eq!(
        f("Grandstream GXP2170 dslforum.org"),
        Some(("Grandstream".into(), Some("GXP2170".into()), None))
    );
    assert_eq!(
        f("Cisco Systems, Inc. IP Phone CP-7940G"),
        Some(("Cisco".into(), Some("7940G".into()), None))
    );
    assert_eq!(f("yealink"), Some(("Yealink".into(), None, None)));
    assert_eq!(f("MSFT 5.0"), None);
    assert_eq!(f(""), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn identification_never_panics(text in "[ -~]{0,120}") {
        pbxkit_provisioning::fuzzing::provisioning_user_agent(text.as_bytes());
    }

    #[test]
    fn yealink_agents_round_trip(model in "T[0-9]{2}[A-Z]?", version in "[0-9]{1,3}(\\.[0-9]{1,3}){3}", mac in proptest::prelude::any::<[u8; 6]>()) {
        let mac = pbxkit_provisioning::Mac::new(mac);
        let ua = format!("Yealink SIP-{model} {version} {mac}");
        let info = from_user_agent(&ua).unwrap();
        proptest::prop_assert_eq!(info.model.as_deref(), Some(model.as_str()));
        proptest::prop_assert_eq!(info.version.as_deref(), Some(version.as_str()));
        proptest::prop_assert_eq!(info.mac, (mac.octets() != [0; 6]).then_some(mac));
    }
}
