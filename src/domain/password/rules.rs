//! What makes a new password one that attackers try first. NIST SP 800-63B rev 4 asks for a
//! blocklist of "commonly used, expected, or compromised" values: breach corpora, context-specific
//! words (the service's name, the user's email), and repetitive or sequential characters. Each
//! check compares the folded form, so case never gets a password past it.

use super::blocklist;
use unicode_normalization::UnicodeNormalization;

/// The form passwords are compared in: NFKC, then lower case.
pub(super) fn fold(password: &str) -> String {
    password.nfkc().collect::<String>().to_lowercase()
}

/// Why a new password is refused, the email aside. `normalized` is the NFKC form, `folded` its
/// [`fold`].
pub(super) fn check(
    normalized: &str,
    folded: &str,
    service_name: &str,
) -> Result<(), &'static str> {
    if normalized.chars().all(char::is_whitespace) {
        return Err("must not be only spaces or other blank characters");
    }
    if is_one_character_repeated(folded) {
        return Err("must not be one character repeated");
    }
    if is_sequence(folded) {
        return Err("must not be a simple sequence such as 12345… or abcde…");
    }
    if folded == "authd" || folded == fold(service_name.trim()) {
        return Err("must not be the name of this service");
    }
    if blocklist::contains(folded) {
        return Err("is too common: it is on a list of passwords leaked in breaches");
    }
    Ok(())
}

/// Refuses the email address, its local part, its domain and the domain without its top-level
/// label, and any password that holds the whole address.
pub(super) fn check_email(folded: &str, address: &str) -> Result<(), &'static str> {
    let address = fold(address.trim());
    let address = address.as_str();
    let refused = Err("must not be your email address or a part of it");
    if !address.is_empty() && folded.contains(address) {
        return refused;
    }
    if let Some((local, domain)) = address.rsplit_once('@') {
        let without_tld = domain.rsplit_once('.').map(|(rest, _)| rest);
        if folded == local || folded == domain || Some(folded) == without_tld {
            return refused;
        }
    }
    Ok(())
}

fn is_one_character_repeated(folded: &str) -> bool {
    let mut chars = folded.chars();
    chars.next().is_some_and(|first| chars.all(|c| c == first))
}

/// Digits or letters, each the next or each the previous of the one before, wrapping around
/// (`123456789012345`, `abcdefghijklmno`, `zyxwvutsrqponml`).
fn is_sequence(folded: &str) -> bool {
    let positions: Option<Vec<(u8, u8)>> = folded
        .chars()
        .map(|c| match c {
            '0'..='9' => Some((10, c as u8 - b'0')),
            'a'..='z' => Some((26, c as u8 - b'a')),
            _ => None,
        })
        .collect();
    let Some(positions) = positions else {
        return false;
    };
    let Some(&(size, _)) = positions.first() else {
        return false;
    };
    if positions.len() < 2 || positions.iter().any(|&(s, _)| s != size) {
        return false;
    }
    let steps = |step: u8| {
        positions
            .windows(2)
            .all(|pair| (pair[0].1 + step) % size == pair[1].1)
    };
    steps(1) || steps(size - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(password: &str) -> bool {
        let normalized: String = password.nfkc().collect();
        check(&normalized, &fold(&normalized), "Acme Login").is_err()
    }

    #[test]
    fn repetitive_and_sequential_passwords_are_refused() {
        for bad in [
            "aaaaaaaaaaaaaaaa",
            "aAaAaAaAaAaAaAaA",
            "                ",
            " \t \u{3000}\u{a0}        ",
            "🔑🔑🔑🔑🔑🔑🔑🔑",
            "123456789012345",
            "0987654321098765",
            "abcdefghijklmno",
            "ABCDEFGHIJKLMNO",
            "onmlkjihgfedcba",
            "xyzabcdefghijkl",
        ] {
            assert!(refused(bad), "{bad:?} passed");
        }
        for fine in [
            "aaaaaaaaaaaaaab",
            "1234567890123457",
            "abcdefghijklmnp",
            "abc123def456ghi789",
            "  spaced  out  words  ",
            "0123456789abcdef",
        ] {
            assert!(!refused(fine), "{fine:?} refused");
        }
    }

    #[test]
    fn service_names_are_refused_whatever_the_case() {
        assert!(refused("authd"));
        assert!(refused("AuthD"));
        assert!(refused("acme login"));
        assert!(refused("ACME LOGIN"));
        assert!(!refused("acme login rocks here"));
    }

    #[test]
    fn the_email_and_its_parts_are_refused() {
        let owner = "Firstname.Lastname@Example-Company.com";
        for bad in [
            "firstname.lastname@example-company.com",
            "firstname.lastname",
            "example-company.com",
            "example-company",
            "my firstname.lastname@example-company.com!",
        ] {
            assert!(check_email(&fold(bad), owner).is_err(), "{bad:?} passed");
        }
        for fine in [
            "firstname lastname rules",
            "example-company.org",
            "lastname",
        ] {
            assert!(check_email(&fold(fine), owner).is_ok(), "{fine:?} refused");
        }
    }

    #[test]
    fn folding_is_nfkc_then_lower_case() {
        assert_eq!(fold("E\u{301}TE\u{301}"), "été");
        assert_eq!(fold("ＰＡＳＳＷＯＲＤ"), "password");
        assert_eq!(fold("ﬁne"), "fine");
    }
}
