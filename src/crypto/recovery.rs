//! Recovery codes: what gets a user with a second factor back in when the authenticator app is
//! gone. Ten per user, each 60 random bits written as 12 lower-case base32 letters in three
//! groups (`abcd-efgh-ijkl`), single-use, stored only as a digest bound to the user (SHA-256 is
//! enough: the codes are random, not chosen, and the tries are throttled).

use crate::domain::UserId;
use sha2::{Digest, Sha256};

/// Codes a user gets at once.
pub const CODES_PER_USER: usize = 10;
/// Letters of a code, without its dashes.
const CODE_LETTERS: usize = 12;
/// RFC 4648 base32 in lower case: no 0/1/8/9, so nothing to mistake for o/l/b/g.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A code to show once, and the digest to store.
pub struct RecoveryCode {
    pub text: String,
    pub digest: [u8; 32],
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

/// `CODES_PER_USER` fresh codes for `user`.
pub fn generate(user: UserId) -> anyhow::Result<Vec<RecoveryCode>> {
    (0..CODES_PER_USER)
        .map(|_| {
            let mut bytes = [0u8; CODE_LETTERS];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let letters: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            let text = format!("{}-{}-{}", &letters[..4], &letters[4..8], &letters[8..]);
            Ok(RecoveryCode {
                digest: digest(user, &letters),
                text,
            })
        })
        .collect()
}

/// The digest of a code as a user typed it (any case, with or without dashes and spaces), or
/// `None` when it cannot be a recovery code at all.
pub fn digest_of_presented(user: UserId, presented: &str) -> Option<[u8; 32]> {
    letters_of(presented).map(|letters| digest(user, &letters))
}

/// Whether `presented` is spelled like a recovery code (for the request's field check).
pub fn is_well_formed(presented: &str) -> bool {
    letters_of(presented).is_some()
}

/// The code's 12 letters, lower case, without dashes and spaces; `None` for anything else.
fn letters_of(presented: &str) -> Option<String> {
    // Longer than any honest spelling: refused before anything else is done with it.
    if presented.len() > 64 {
        return None;
    }
    let letters: String = presented
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let well_formed =
        letters.len() == CODE_LETTERS && letters.bytes().all(|b| ALPHABET.contains(&b));
    well_formed.then_some(letters)
}

fn digest(user: UserId, letters: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"authd recovery code\0");
    hash.update(user.0.as_bytes());
    hash.update(letters.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_readable_and_match_however_they_are_typed() -> anyhow::Result<()> {
        let user = UserId::new();
        let codes = generate(user)?;
        assert_eq!(codes.len(), CODES_PER_USER);
        let texts: std::collections::HashSet<_> = codes.iter().map(|c| c.text.clone()).collect();
        assert_eq!(texts.len(), CODES_PER_USER);
        let code = &codes[0];
        assert_eq!(code.text.len(), 14);
        assert_eq!(code.text.matches('-').count(), 2);
        for typed in [
            code.text.clone(),
            code.text.to_uppercase(),
            code.text.replace('-', ""),
            code.text.replace('-', " "),
            format!("  {}  ", code.text),
        ] {
            assert_eq!(
                digest_of_presented(user, &typed),
                Some(code.digest),
                "{typed:?}"
            );
        }
        assert_ne!(
            digest_of_presented(UserId::new(), &code.text),
            Some(code.digest),
            "bound to the user"
        );
        Ok(())
    }

    #[test]
    fn anything_not_spelled_like_a_code_is_refused() {
        let user = UserId::new();
        for bad in [
            "",
            "abcd-efgh-ijk",
            "abcd-efgh-ijklm",
            "abcd-efgh-ijk1",
            "ａｂｃｄ-efgh-ijkl",
            "abcd-efgh-ijkl\u{0}",
            &"a".repeat(1 << 20),
        ] {
            assert_eq!(
                digest_of_presented(user, bad),
                None,
                "{:?}",
                &bad[..bad.len().min(20)]
            );
        }
        assert!(is_well_formed("abcd-efgh-ijkl"));
    }
}
