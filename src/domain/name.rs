use super::FieldViolation;

const MAX_NAME_CHARS: usize = 200;

/// A person's display name: trimmed, not empty, at most 200 characters, and nothing that is not
/// shown as itself: no control characters, and none of the invisible characters that change how
/// the text around them is shown. A bidirectional override (U+202E before "nimda") makes
/// "Ada" + "nimda" read "Adaadmin"; zero-width characters make two names that look alike differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldViolation::new(field, "contains control characters"));
        }
        if name.chars().any(is_invisible_format) {
            return Err(FieldViolation::new(
                field,
                "contains invisible formatting characters (bidirectional or zero-width)",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode format characters (category Cf) that a name has no use for: they are not shown, yet
/// reorder or split what is.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
        | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
        | '\u{061C}' // Arabic letter mark
        | '\u{FEFF}' // zero-width no-break space (BOM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(raw: &str) -> bool {
        DisplayName::parse("name", raw).is_err()
    }

    #[test]
    fn trims_and_bounds() {
        assert_eq!(
            DisplayName::parse("name", "  Ada Lovelace ").map(|n| n.0),
            Ok("Ada Lovelace".to_owned())
        );
        assert!(DisplayName::parse("name", &"n".repeat(200)).is_ok());
        assert!(refused(&"n".repeat(201)));
        assert!(refused("a\u{7}b"));
        assert!(refused("a\nb"));
    }

    #[test]
    fn empty_and_blank_names_are_refused() {
        for blank in ["", " ", "\t\n", "\u{3000}", "\u{2003}\u{2003}"] {
            let refused = DisplayName::parse("name", blank).err();
            assert_eq!(refused, Some(FieldViolation::new("name", "is required")));
        }
    }

    #[test]
    fn bidirectional_and_zero_width_characters_are_refused() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{200B}', '\u{200C}', '\u{200D}',
            '\u{FEFF}', '\u{061C}', '\u{2060}',
        ] {
            assert!(refused(&format!("Ada{c}nimda")), "U+{:04X}", u32::from(c));
            // Trimming does not strip them: they are not whitespace.
            assert!(refused(&format!("{c}Ada")), "U+{:04X} first", u32::from(c));
            assert!(refused(&c.to_string()), "U+{:04X} alone", u32::from(c));
        }
    }

    #[test]
    fn names_in_any_script_are_welcome() {
        for name in [
            "Ada",
            "Łukasz Żółć",
            "محمد",
            "שָׁלוֹם",
            "李小龍",
            "Zoë O'Brien-Smith",
            "👩‍💻",
        ] {
            // The last one is a ZWJ emoji sequence: refused for its U+200D, as a name it is odd anyway.
            assert_eq!(refused(name), name.contains('\u{200D}'), "{name}");
        }
    }

    proptest! {
        #[test]
        fn what_is_accepted_is_trimmed_visible_and_bounded(raw in any::<String>()) {
            if let Ok(name) = DisplayName::parse("name", &raw) {
                let name = name.as_str();
                prop_assert!(!name.is_empty());
                prop_assert_eq!(name, name.trim());
                prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
                prop_assert!(!name.chars().any(|c| c.is_control() || is_invisible_format(c)));
            }
        }
    }
}
