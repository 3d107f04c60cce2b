//! What callers send, parsed into values the store can trust: a habit's name and description,
//! and habit ids.

use uuid::Uuid;

/// Longest name, in characters after trimming.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest description, in characters after trimming.
pub const DESCRIPTION_MAX_CHARS: usize = 1000;

/// Why a request was refused; the message names the field and never repeats its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("name must not be empty")]
    NameEmpty,
    #[error("name must be at most {NAME_MAX_CHARS} characters")]
    NameTooLong,
    #[error("name must not hold control characters")]
    NameControl,
    #[error("description must be at most {DESCRIPTION_MAX_CHARS} characters")]
    DescriptionTooLong,
    #[error("description must not hold control characters")]
    DescriptionControl,
    #[error("id must be a habit id (a UUID)")]
    Id,
}

/// A habit to create: name and description trimmed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHabit {
    name: String,
    description: String,
}

impl NewHabit {
    /// Trims both fields, then checks them.
    pub fn parse(name: &str, description: &str) -> Result<Self, InvalidInput> {
        let name = name.trim();
        let description = description.trim();
        if name.is_empty() {
            return Err(InvalidInput::NameEmpty);
        }
        // Counting stops one past the limit, so a huge field costs no more than a long one.
        if name.chars().take(NAME_MAX_CHARS + 1).count() > NAME_MAX_CHARS {
            return Err(InvalidInput::NameTooLong);
        }
        if name.chars().any(is_forbidden) {
            return Err(InvalidInput::NameControl);
        }
        if description.chars().take(DESCRIPTION_MAX_CHARS + 1).count() > DESCRIPTION_MAX_CHARS {
            return Err(InvalidInput::DescriptionTooLong);
        }
        if description.chars().any(is_forbidden) {
            return Err(InvalidInput::DescriptionControl);
        }
        Ok(Self {
            name: name.to_owned(),
            description: description.to_owned(),
        })
    }

    /// The trimmed name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trimmed description (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// A habit id from a request.
pub fn parse_id(id: &str) -> Result<Uuid, InvalidInput> {
    Uuid::try_parse(id).map_err(|_| InvalidInput::Id)
}

/// Control characters (newlines and tabs included), and the invisible direction marks and
/// overrides that make a text display as something else than it is.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_what_is_valid() {
        let habit = NewHabit::parse("  Read  ", "\u{a0}ten pages ").unwrap();
        assert_eq!(habit.name(), "Read");
        assert_eq!(habit.description(), "ten pages");
        assert_eq!(NewHabit::parse("Run", "").unwrap().description(), "");
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let name = "é".repeat(NAME_MAX_CHARS);
        assert!(NewHabit::parse(&name, "").is_ok());
        assert_eq!(
            NewHabit::parse(&format!("{name}é"), ""),
            Err(InvalidInput::NameTooLong)
        );
        let description = "ü".repeat(DESCRIPTION_MAX_CHARS);
        assert!(NewHabit::parse("x", &description).is_ok());
        assert_eq!(
            NewHabit::parse("x", &format!("{description}ü")),
            Err(InvalidInput::DescriptionTooLong)
        );
    }

    #[test]
    fn refuses_empty_and_control_characters() {
        assert_eq!(NewHabit::parse(" \t\n", "x"), Err(InvalidInput::NameEmpty));
        assert_eq!(NewHabit::parse("a\0b", ""), Err(InvalidInput::NameControl));
        assert_eq!(
            NewHabit::parse("a\u{202E}b", ""),
            Err(InvalidInput::NameControl)
        );
        assert_eq!(
            NewHabit::parse("a", "line\nbreak"),
            Err(InvalidInput::DescriptionControl)
        );
        assert_eq!(
            NewHabit::parse("a", "\u{1b}[31mred"),
            Err(InvalidInput::DescriptionControl)
        );
    }

    #[test]
    fn ids_must_be_uuids() {
        let id = Uuid::now_v7();
        assert_eq!(parse_id(&id.to_string()), Ok(id));
        for bad in ["", "42", "not-a-uuid", &"a".repeat(10_000)] {
            assert_eq!(parse_id(bad), Err(InvalidInput::Id));
        }
    }
}
