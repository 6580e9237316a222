//! Search folding: case- and accent-insensitive comparison of search terms and values.
//!
//! [`fold`] lower-cases and strips the accents of Latin-1 and Latin Extended-A letters
//! ("Hélène" → "helene", "Müller" → "muller", "Ægir" → "aegir", "Straße" → "strasse"),
//! with a hand-written table: no Unicode normalisation crate is needed for the letters
//! directories hold. Other characters are only lower-cased.
//!
//! Folding is done one character at a time (never with the context-sensitive
//! `str::to_lowercase`), so that `fold(a + b) == fold(a) + fold(b)`: a value containing
//! a term still contains it once both are folded.

/// The folded form of `c` when the table has one: ASCII letters, lower case.
fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        // Latin-1 Supplement.
        'À'..='Å' | 'à'..='å' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' => "c",
        'È'..='Ë' | 'è'..='ë' => "e",
        'Ì'..='Ï' | 'ì'..='ï' => "i",
        'Ð' | 'ð' => "d",
        'Ñ' | 'ñ' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' => "o",
        'Ù'..='Ü' | 'ù'..='ü' => "u",
        'Ý' | 'ý' | 'ÿ' => "y",
        'Þ' | 'þ' => "th",
        'ß' => "ss",
        // Latin Extended-A, U+0100–U+017F.
        'Ā'..='ą' => "a",
        'Ć'..='č' => "c",
        'Ď'..='đ' => "d",
        'Ē'..='ě' => "e",
        'Ĝ'..='ģ' => "g",
        'Ĥ'..='ħ' => "h",
        'Ĩ'..='ı' => "i",
        'Ĳ' | 'ĳ' => "ij",
        'Ĵ' | 'ĵ' => "j",
        'Ķ' | 'ķ' | 'ĸ' => "k",
        'Ĺ'..='ł' => "l",
        'Ń'..='ň' | 'Ŋ' | 'ŋ' => "n",
        'ŉ' => "'n",
        'Ō'..='ő' => "o",
        'Œ' | 'œ' => "oe",
        'Ŕ'..='ř' => "r",
        'Ś'..='š' | 'ſ' => "s",
        'Ţ'..='ŧ' => "t",
        'Ũ'..='ų' => "u",
        'Ŵ' | 'ŵ' => "w",
        'Ŷ'..='Ÿ' => "y",
        'Ź'..='ž' => "z",
        _ => return None,
    })
}

/// `text` lower-cased, with the accents of Latin-1 and Latin Extended-A letters removed
/// and their ligatures spelt out (see the module docs).
pub(crate) fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match fold_char(c) {
            Some(folded) => out.push_str(folded),
            None => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Appends the folded form of `text` (as [`fold`] computes it) to `out`, as UTF-8: the
/// index folds millions of values into one buffer, without a `String` for each.
pub(crate) fn fold_into(text: &str, out: &mut Vec<u8>) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
        return;
    }
    let mut buf = [0; 4];
    for c in text.chars() {
        match fold_char(c) {
            Some(folded) => out.extend_from_slice(folded.as_bytes()),
            None => {
                for lower in c.to_lowercase() {
                    out.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_accents() {
        assert_eq!(fold("Hélène"), "helene");
        assert_eq!(fold("HÉLÈNE"), "helene");
        assert_eq!(fold("Müller"), "muller");
        assert_eq!(fold("Ægir"), "aegir");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("Łukasz Żółć"), "lukasz zolc");
        assert_eq!(fold("Œuvre Ĳssel Ŧ"), "oeuvre ijssel t");
        assert_eq!(fold("ABC-12"), "abc-12");
        // Outside the table: lower-cased only.
        assert_eq!(fold("ΣΑΣ"), "σασ");
        assert_eq!(fold("×÷"), "×÷");
    }

    proptest::proptest! {
        /// Folding is per character, so a value containing a term still contains it
        /// once both are folded (what substring search relies on).
        #[test]
        fn folding_preserves_substrings(a in "\\PC{0,12}", b in "\\PC{0,12}", c in "\\PC{0,12}") {
            let whole = format!("{a}{b}{c}");
            proptest::prop_assert_eq!(fold(&whole), format!("{}{}{}", fold(&a), fold(&b), fold(&c)));
            proptest::prop_assert!(fold(&whole).contains(&fold(&b)));
        }
    }

    proptest::proptest! {
        /// The buffer variant writes exactly what `fold` returns, after what is there.
        #[test]
        fn fold_into_matches_fold(prefix in "\\PC{0,4}", text in "\\PC{0,16}") {
            let mut out = prefix.clone().into_bytes();
            fold_into(&text, &mut out);
            proptest::prop_assert_eq!(out, format!("{prefix}{}", fold(&text)).into_bytes());
        }
    }

    #[test]
    fn every_latin_letter_folds_to_ascii() {
        // Every letter of U+00C0–U+017F but × and ÷ has an entry, and it is lower-case
        // ASCII (or an apostrophe for ŉ).
        for c in ('\u{C0}'..='\u{17F}').filter(|c| !matches!(c, '×' | '÷')) {
            let folded = fold_char(c).unwrap_or_else(|| panic!("{c:?} has no entry"));
            assert!(
                folded.chars().all(|f| f.is_ascii_lowercase() || f == '\''),
                "{c:?} → {folded:?}"
            );
        }
    }
}
