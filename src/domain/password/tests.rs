use super::*;
use proptest::prelude::*;

fn policy(min_chars: usize) -> PasswordPolicy {
    PasswordPolicy {
        min_chars,
        max_bytes: None,
        service_name: "authd".into(),
    }
}

fn new(raw: &str) -> Result<Password, FieldViolation> {
    Password::parse_new("password", raw, &policy(8), None)
}

fn why(result: Result<Password, FieldViolation>) -> String {
    match result {
        Ok(_) => panic!("accepted"),
        Err(violation) => violation.description,
    }
}

fn email(raw: &str) -> Email {
    Email::parse("email", raw).unwrap_or_else(|_| panic!("bad test email"))
}

#[test]
fn length_bounds_count_characters_of_the_normalized_form() {
    assert!(new("dog7cat").is_err());
    assert!(new("dog7cat2").is_ok());
    let long = "correct horse battery staple ".repeat(5);
    assert!(new(&long[..128]).is_ok());
    assert!(new(&long[..129]).is_err());
    // 128 characters of 4 bytes each is 512 bytes, and still allowed.
    let keys: String = "🔑🔒".repeat(64);
    assert!(new(&keys).is_ok());
    assert!(new(&format!("{keys}🔑")).is_err());
    assert!(new("éèêëéèê").is_err());
    assert!(new("").is_err());
    // NFD: 12 code points typed, 8 characters once composed.
    let nfd = "e\u{301}t".repeat(4);
    assert_eq!(nfd.chars().count(), 12);
    assert!(Password::parse_new("password", &nfd, &policy(9), None).is_err());
    assert!(new(&nfd).is_ok());
    // Compatibility forms expand: one U+FDFA is 18 characters in NFKC.
    let expands = "\u{fdfa}".repeat(8);
    assert!(new(&expands).is_err(), "144 characters once normalized");
}

#[test]
fn the_default_minimum_is_fifteen_and_can_be_lowered_to_eight() {
    let strict = policy(15);
    assert!(Password::parse_new("password", "fourteen chars", &strict, None).is_err());
    assert!(Password::parse_new("password", "fifteen chars!!", &strict, None).is_ok());
    assert!(Password::parse_new("password", "dog7cat2", &policy(8), None).is_ok());
    // Whatever the configuration says, never below 8.
    assert!(Password::parse_new("password", "dog7cat", &policy(4), None).is_err());
}

#[test]
fn new_passwords_are_normalized_login_attempts_keep_what_was_typed() {
    let nfc = "caf\u{e9} au lait, s'il vous pla\u{ee}t";
    let nfd = "cafe\u{301} au lait, s'il vous plai\u{302}t";
    let new = Password::parse_new("password", nfd, &policy(15), None).unwrap_or_else(|_| panic!());
    assert_eq!(new.expose(), nfc);
    assert_eq!(
        new.expose_as_typed(),
        None,
        "new hashes come from one form only"
    );
    let attempt = Password::parse_attempt("password", nfd).unwrap_or_else(|_| panic!());
    assert_eq!(attempt.expose(), nfc);
    assert_eq!(attempt.expose_as_typed(), Some(nfd));
    let plain = Password::parse_attempt("password", nfc).unwrap_or_else(|_| panic!());
    assert_eq!(plain.expose_as_typed(), None, "nothing to fall back to");
}

#[test]
fn login_attempts_are_held_to_the_absolute_bounds_only() {
    assert!(Password::parse_attempt("password", "1234567").is_err());
    assert!(Password::parse_attempt("password", "12345678").is_ok());
    assert!(Password::parse_attempt("password", "aaaaaaaa").is_ok());
    assert!(Password::parse_attempt("password", &"x".repeat(129)).is_err());
    assert!(Password::parse_attempt("password", "").is_err());
    // A stricter configured minimum does not apply at login.
    assert!(Password::parse_new("password", "quietly9k", &policy(12), None).is_err());
    assert!(Password::parse_attempt("password", "quietly9k").is_ok());
    // Set before normalization: 8 code points as typed, 7 characters in NFKC. Still let in.
    let legacy = "cafe\u{301}123";
    assert_eq!(legacy.chars().count(), 8);
    assert!(Password::parse_attempt("password", legacy).is_ok());
}

#[test]
fn huge_input_is_refused_without_normalizing_it() {
    let huge = "e\u{301}".repeat(1 << 19);
    let started = std::time::Instant::now();
    assert!(new(&huge).is_err());
    assert!(Password::parse_attempt("password", &huge).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn a_byte_limit_refuses_what_the_hash_would_cut() {
    let bcrypt = PasswordPolicy {
        max_bytes: Some(72),
        ..policy(8)
    };
    let phrase = "correct horse battery staple, every day of the week, twice before lunch!";
    assert_eq!(phrase.len(), 72);
    assert!(Password::parse_new("password", phrase, &bcrypt, None).is_ok());
    assert!(Password::parse_new("password", &format!("{phrase}?"), &bcrypt, None).is_err());
    // 19 four-byte characters: few characters, too many bytes.
    let keys = "🔑🔒".repeat(10);
    assert!(Password::parse_new("password", &keys[..76], &bcrypt, None).is_err());
    // The limit is on the normalized form: 36 NFD `é` are 108 bytes typed, 72 composed.
    let nfd = "e\u{301}a\u{301}".repeat(18);
    assert!(Password::parse_new("password", &nfd, &bcrypt, None).is_ok());
}

#[test]
fn common_passwords_are_refused_in_any_case_and_form() {
    for common in [
        "password123",
        "PASSWORD123",
        "PassWord123",
        "ｐａｓｓｗｏｒｄ１２３", // fullwidth: NFKC makes it ASCII
        "iloveyou",
        "1234567890qwertyuiop",
        "QWERTYUIOPASDFGHJKL",
    ] {
        let why = why(new(common));
        assert!(why.contains("too common"), "{common:?}: {why}");
    }
}

#[test]
fn context_words_are_refused() {
    let owner = email("Jonathan.Stevenson@Longexample.com");
    let new_for = |raw: &str| Password::parse_new("password", raw, &policy(8), Some(&owner));
    for bad in [
        "jonathan.stevenson@longexample.com",
        "JONATHAN.STEVENSON",
        "longexample.com",
        "Longexample",
        "jonathan.stevenson@longexample.com1",
    ] {
        assert!(why(new_for(bad)).contains("email"), "{bad:?}");
    }
    assert!(new_for("jonathan runs on sundays").is_ok());
    let service = PasswordPolicy {
        service_name: " Acme Accounts ".into(),
        ..policy(8)
    };
    for bad in ["acme accounts", "ACME ACCOUNTS"] {
        let refused = Password::parse_new("password", bad, &service, None);
        assert!(why(refused).contains("service"), "{bad:?}");
    }
    // Known only later (a reset finds the email through its token): the same rule.
    let later = new("longexample.com").unwrap_or_else(|_| panic!());
    assert!(
        later
            .check_not_email("new_password", owner.as_str())
            .is_err()
    );
    let fine = new("nothing to do with it").unwrap_or_else(|_| panic!());
    assert!(fine.check_not_email("new_password", owner.as_str()).is_ok());
}

#[test]
fn the_test_suites_password_is_accepted() {
    assert!(Password::parse_new("password", "correct horse battery", &policy(15), None).is_ok());
}

#[test]
fn debug_does_not_reveal_the_password() {
    let password = Password::parse_attempt("password", "hunter2hunter2\u{301}");
    let shown = format!("{password:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

proptest! {
    #[test]
    fn accepted_only_within_bounds_and_refusals_never_echo(raw in "\\PC{0,140}") {
        let normalized: String = raw.nfkc().collect();
        let chars = normalized.chars().count();
        match Password::parse_new("password", &raw, &policy(8), Some(&email("pat@example.com"))) {
            Ok(password) => {
                prop_assert!((8..=128).contains(&chars));
                prop_assert_eq!(password.expose(), normalized.as_str());
            }
            Err(violation) => {
                prop_assert_eq!(violation.field, "password");
                if raw.chars().count() >= 8 {
                    prop_assert!(!violation.description.contains(raw.as_str()));
                }
            }
        }
    }

    #[test]
    fn attempts_take_every_typed_length_from_8_to_128(raw in "\\PC{8,128}") {
        prop_assert!(Password::parse_attempt("password", &raw).is_ok());
    }
}
