//! Which table and columns of another app's database `authd import --from-db` reads, as typed
//! values: every name a plain identifier, written quoted, so nothing unchecked reaches SQL.

use std::fmt;

/// A PostgreSQL identifier that is safe to quote: 1 to 63 bytes of ASCII letters, digits and
/// `_`, not starting with a digit. Case is kept (it is always written quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = (1..=63).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !raw.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a plain identifier: use 1 to 63 letters, digits and _, not starting \
                 with a digit",
                raw.escape_debug()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    /// Quoted, ready for SQL: the characters allowed need no escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// A table, optionally in a schema (`schema.table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<Identifier>,
    pub table: Identifier,
}

impl TableName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once('.') {
            Some((schema, table)) => Ok(Self {
                schema: Some(Identifier::parse(schema)?),
                table: Identifier::parse(table)?,
            }),
            None => Ok(Self {
                schema: None,
                table: Identifier::parse(raw)?,
            }),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => write!(f, "{}", self.table),
        }
    }
}

/// Where the users are in the source database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub table: TableName,
    pub id: Identifier,
    pub email: Identifier,
    pub password_hash: Identifier,
    pub name: Option<Identifier>,
    pub email_verified: Option<Identifier>,
}

impl SourceTable {
    /// The query the cursor runs: every value as text (ids may be numbers, UUIDs or strings;
    /// "verified" may be a boolean or a timestamp), in primary-key order.
    pub fn select(&self) -> String {
        let optional = |column: &Option<Identifier>| {
            column
                .as_ref()
                .map_or_else(|| "NULL::text".to_owned(), |c| format!("{c}::text"))
        };
        format!(
            "SELECT {id}::text, {email}::text, {hash}::text, {name}, {verified} FROM {table} \
             ORDER BY {id}",
            id = self.id,
            email = self.email,
            hash = self.password_hash,
            name = optional(&self.name),
            verified = optional(&self.email_verified),
            table = self.table,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_names_and_nothing_else() {
        for good in [
            "users",
            "User",
            "password_hash",
            "emailVerified",
            "_x",
            "a1",
        ] {
            assert_eq!(Identifier::parse(good).map(|i| i.0), Ok(good.to_owned()));
        }
        for bad in [
            "",
            "users; DROP TABLE x",
            "users\"; DROP TABLE x; --",
            "1users",
            "email verified",
            "naïve",
            "a-b",
            "a.b",
            "x\0",
            &"a".repeat(64),
        ] {
            assert!(Identifier::parse(bad).is_err(), "accepted {bad:?}");
        }
        let refused = Identifier::parse("users; DROP TABLE x").unwrap_err();
        assert!(refused.contains("not a plain identifier"), "{refused}");
    }

    #[test]
    fn tables_may_name_a_schema() {
        let table = TableName::parse("public.users").unwrap();
        assert_eq!(table.to_string(), "\"public\".\"users\"");
        assert_eq!(TableName::parse("User").unwrap().to_string(), "\"User\"");
        for bad in ["a.b.c", ".users", "users.", "public.users; DROP TABLE x"] {
            assert!(TableName::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn the_query_quotes_every_name() {
        let id = |s: &str| Identifier::parse(s).unwrap();
        let source = SourceTable {
            table: TableName::parse("User").unwrap(),
            id: id("id"),
            email: id("email"),
            password_hash: id("password"),
            name: Some(id("name")),
            email_verified: None,
        };
        assert_eq!(
            source.select(),
            "SELECT \"id\"::text, \"email\"::text, \"password\"::text, \"name\"::text, \
             NULL::text FROM \"User\" ORDER BY \"id\""
        );
    }
}
