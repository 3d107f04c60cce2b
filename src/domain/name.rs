use super::FieldViolation;

const MAX_NAME_CHARS: usize = 200;

/// A person's display name: trimmed, may be empty, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        let name = raw.trim();
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldViolation::new(field, "contains control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(
            DisplayName::parse("name", "  Ada Lovelace ").map(|n| n.0),
            Ok("Ada Lovelace".to_owned())
        );
        assert!(DisplayName::parse("name", "").is_ok());
        assert!(DisplayName::parse("name", &"n".repeat(201)).is_err());
        assert!(DisplayName::parse("name", "a\u{7}b").is_err());
    }
}
