//! The common passwords no new password may be: SecLists' 100,000 most common passwords of Mark
//! Burnett's 10 million (see NOTICE.md beside the data file), folded as authd folds passwords and
//! kept when 8 to 128 characters long, since no shorter or longer password gets this far.
//!
//! The list is compiled into the binary as one sorted text, one entry a line, and searched in
//! place by bisecting on byte offsets: no allocation, no work at start, a few dozen comparisons
//! per lookup. `scripts/make-blocklist` rebuilds the file.

use std::cmp::Ordering;

/// Sorted by UTF-8 bytes, no duplicates, each line ending in `\n`.
const COMMON: &str = include_str!("common-passwords.txt");

/// Whether `folded` (a password in the form of [`super::rules::fold`]) is on the list.
pub(super) fn contains(folded: &str) -> bool {
    let data = COMMON.as_bytes();
    let needle = folded.as_bytes();
    // `lo` is always the start of a line, `hi` the start of a line or the end of the data.
    let (mut lo, mut hi) = (0, data.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = data[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |at| lo + at + 1);
        let end = data[start..hi]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hi, |at| start + at);
        match data[start..end].cmp(needle) {
            Ordering::Equal => return true,
            Ordering::Less => lo = end + 1,
            Ordering::Greater => hi = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::password::rules::fold;

    fn entries() -> impl Iterator<Item = &'static str> {
        COMMON.lines()
    }

    #[test]
    fn the_list_is_sorted_folded_and_within_the_length_bounds() {
        assert!(COMMON.ends_with('\n'));
        let mut previous: Option<&str> = None;
        let mut count = 0;
        for entry in entries() {
            assert_eq!(fold(entry), entry, "not folded");
            let chars = entry.chars().count();
            assert!((8..=128).contains(&chars), "{entry:?}");
            if let Some(previous) = previous {
                assert!(
                    previous.as_bytes() < entry.as_bytes(),
                    "{previous:?} {entry:?}"
                );
            }
            previous = Some(entry);
            count += 1;
        }
        // The entries of 8 characters or more among the top 100,000.
        assert_eq!(count, 38_452);
    }

    #[test]
    fn lookups_agree_with_a_set_of_the_entries() {
        let set: std::collections::HashSet<&str> = entries().collect();
        for entry in entries() {
            assert!(contains(entry), "{entry:?} not found");
            let mut chars = entry.chars();
            chars.next_back();
            let without_last = chars.as_str();
            let mut chars = entry.chars();
            chars.next();
            let without_first = chars.as_str();
            for near in [
                without_last.to_owned(),
                without_first.to_owned(),
                format!("{entry}\u{1}"),
                format!("{entry}\n"),
                format!("\n{entry}"),
            ] {
                assert_eq!(contains(&near), set.contains(near.as_str()), "{near:?}");
            }
        }
        for absent in [
            "",
            "\n",
            "correct horse battery",
            "~~~~~~~~~~",
            "!",
            "\u{10ffff}",
        ] {
            assert!(!contains(absent), "{absent:?} found");
        }
    }

    #[test]
    fn the_best_known_are_there() {
        for common in [
            "password",
            "12345678",
            "password123",
            "iloveyou",
            "qwertyuiop",
        ] {
            assert!(contains(common), "{common}");
        }
        assert!(contains("1234567890qwertyuiop"), "a 20-character entry");
    }
}
