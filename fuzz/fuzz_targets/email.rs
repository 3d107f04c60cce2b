//! `Email::parse` on any string never panics, and what it accepts is the stored form: trimmed,
//! lower-case, one `@`-separated local part and domain within the RFC 5321 lengths, and parsing
//! that form again gives it back unchanged.
#![no_main]

use authd::domain::Email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let Ok(email) = Email::parse("email", raw) else {
        return;
    };
    let email = email.as_str();
    assert!(email.len() <= 254, "{email:?}");
    assert_eq!(email, email.trim(), "untrimmed {email:?}");
    assert_eq!(email, email.to_lowercase(), "not lower-case {email:?}");
    assert!(email.is_ascii(), "non-ASCII {email:?}");
    let (local, domain) = email.rsplit_once('@').expect("an @");
    assert!(!local.is_empty() && local.len() <= 64, "{email:?}");
    assert!(domain.contains('.') && !domain.contains('@'), "{email:?}");
    let again = Email::parse("email", email).expect("the stored form parses");
    assert_eq!(again.as_str(), email);
});
