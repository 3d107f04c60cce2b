//! `Password::parse_new` and `parse_attempt` on any string never panic; what they accept is
//! within the bounds they promise (characters, not bytes; bcrypt's 72 bytes when configured),
//! and is the caller's password unchanged.
#![no_main]

use authd::domain::{Password, PasswordPolicy};
use libfuzzer_sys::fuzz_target;

const MAX_CHARS: usize = 128;
const MIN_ATTEMPT_CHARS: usize = 8;

fuzz_target!(|raw: &str| {
    let chars = raw.chars().count();
    for (min_chars, max_bytes) in [(8, None), (15, None), (8, Some(72)), (15, Some(72))] {
        let policy = PasswordPolicy {
            min_chars,
            max_bytes,
        };
        if let Ok(password) = Password::parse_new("password", raw, policy) {
            assert!(
                (min_chars..=MAX_CHARS).contains(&chars),
                "{chars} chars accepted"
            );
            assert!(
                max_bytes.is_none_or(|max| raw.len() <= max),
                "{} bytes",
                raw.len()
            );
            assert_eq!(password.expose(), raw);
        }
    }
    if let Ok(password) = Password::parse_attempt("password", raw) {
        assert!(
            (MIN_ATTEMPT_CHARS..=MAX_CHARS).contains(&chars),
            "{chars} chars accepted"
        );
        assert_eq!(password.expose(), raw);
    }
});
