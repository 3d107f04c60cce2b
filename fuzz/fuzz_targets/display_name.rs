//! `DisplayName::parse` on any string never panics, and what it accepts is trimmed, not empty,
//! at most 200 characters, and free of control characters and of the invisible bidirectional
//! and zero-width ones.
#![no_main]

use authd::domain::DisplayName;
use libfuzzer_sys::fuzz_target;

fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fuzz_target!(|raw: &str| {
    let Ok(name) = DisplayName::parse("name", raw) else {
        return;
    };
    let name = name.as_str();
    assert!(!name.is_empty());
    assert_eq!(name, name.trim());
    assert!(name.chars().count() <= 200);
    assert!(
        !name.chars().any(|c| c.is_control() || invisible(c)),
        "{name:?}"
    );
    assert_eq!(raw.trim(), name, "the name is the input, trimmed");
});
