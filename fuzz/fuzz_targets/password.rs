//! `Password::parse_new` and `parse_attempt` on any string never panic, and what they accept is
//! within the bounds they promise, counted on the NFKC form that is hashed (characters, not
//! bytes; bcrypt's 72 bytes when configured). Normalizing is idempotent: the form they keep
//! parses to itself.
#![no_main]

use authd::domain::{Email, Password, PasswordPolicy};
use libfuzzer_sys::fuzz_target;

const MAX_CHARS: usize = 128;
const MIN_ATTEMPT_CHARS: usize = 8;

fuzz_target!(|raw: &str| {
    let email = Email::parse("email", "fuzz@example.com").ok();
    for (min_chars, max_bytes) in [(8, None), (15, None), (8, Some(72)), (15, Some(72))] {
        let policy = PasswordPolicy {
            min_chars,
            max_bytes,
            service_name: "authd".to_owned(),
        };
        for email in [None, email.as_ref()] {
            if let Ok(password) = Password::parse_new("password", raw, &policy, email) {
                let kept = password.expose();
                let chars = kept.chars().count();
                assert!((min_chars..=MAX_CHARS).contains(&chars), "{chars} chars accepted");
                assert!(max_bytes.is_none_or(|max| kept.len() <= max), "{} bytes", kept.len());
                let again = Password::parse_new("password", kept, &policy, email)
                    .unwrap_or_else(|e| panic!("its own normal form is refused: {e:?}"));
                assert_eq!(again.expose(), kept, "NFKC is idempotent");
            }
        }
    }
    if let Ok(password) = Password::parse_attempt("password", raw) {
        let chars = password.expose().chars().count();
        let typed = password.expose_as_typed().map_or(chars, |t| t.chars().count());
        assert!(
            (MIN_ATTEMPT_CHARS..=MAX_CHARS).contains(&chars)
                || (MIN_ATTEMPT_CHARS..=MAX_CHARS).contains(&typed),
            "{chars} chars accepted"
        );
    }
});
