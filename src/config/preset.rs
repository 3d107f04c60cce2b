//! Which table and columns `--from-db` reads: a preset's names, each replaced by its flag when
//! one is given, every name checked as a plain identifier.

use super::import::{ImportArgs, Preset};
use super::source_table::{Identifier, SourceTable, TableName};

/// The names a preset gives: table, id, email, hash, name, verified.
struct Names {
    table: &'static str,
    id: &'static str,
    email: &'static str,
    hash: &'static str,
    name: Option<&'static str>,
    verified: Option<&'static str>,
}

fn names(preset: Preset) -> Names {
    match preset {
        // pgTable('users', { id: bigserial('id'), email: text('email'), name: text('name'),
        // passwordHash: text('password_hash'), emailVerified: boolean('email_verified') })
        Preset::DrizzleSeed => Names {
            table: "users",
            id: "id",
            email: "email",
            hash: "password_hash",
            name: Some("name"),
            verified: Some("email_verified"),
        },
        // model User { id String @id @default(uuid()), email String @unique, name String?,
        // password String }: Prisma names the table and columns as the model does.
        Preset::PrismaSeed => Names {
            table: "User",
            id: "id",
            email: "email",
            hash: "password",
            name: Some("name"),
            verified: None,
        },
    }
}

/// The source table `args` describe, or each problem with the clap id of the setting it is
/// about.
pub fn source_table(args: &ImportArgs) -> Result<SourceTable, Vec<(&'static str, String)>> {
    let preset = args.preset.map(names);
    let mut problems = Vec::new();
    let mut pick = |setting: &'static str, flag: &Option<String>, preset: Option<&'static str>| {
        let raw = flag.as_deref().or(preset)?;
        Identifier::parse(raw)
            .map_err(|why| problems.push((setting, why)))
            .ok()
    };
    let id = pick(
        "id_column",
        &args.id_column,
        Some(preset.as_ref().map_or("id", |p| p.id)),
    );
    let email = pick(
        "email_column",
        &args.email_column,
        preset.as_ref().map(|p| p.email),
    );
    let hash = pick(
        "hash_column",
        &args.hash_column,
        preset.as_ref().map(|p| p.hash),
    );
    let name = pick(
        "name_column",
        &args.name_column,
        preset.as_ref().and_then(|p| p.name),
    );
    let verified = pick(
        "verified_column",
        &args.verified_column,
        preset.as_ref().and_then(|p| p.verified),
    );
    let table = match args.table.as_deref().or(preset.as_ref().map(|p| p.table)) {
        Some(raw) => TableName::parse(raw)
            .map_err(|why| problems.push(("table", why)))
            .ok(),
        None => None,
    };
    let required = [
        ("table", table.is_none() && args.table.is_none()),
        (
            "email_column",
            email.is_none() && args.email_column.is_none(),
        ),
        ("hash_column", hash.is_none() && args.hash_column.is_none()),
    ];
    for (setting, missing) in required {
        if missing {
            problems.push((
                setting,
                "is needed with --from-db (or a --preset)".to_owned(),
            ));
        }
    }
    match (table, id, email, hash) {
        (Some(table), Some(id), Some(email), Some(password_hash)) if problems.is_empty() => {
            Ok(SourceTable {
                table,
                id,
                email,
                password_hash,
                name,
                email_verified: verified,
            })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> ImportArgs {
        let mut all = vec!["authd", "import", "--from-db", "postgres://app@db/app"];
        all.extend_from_slice(extra);
        match Cli::try_parse_from(all).map(|cli| cli.command) {
            Ok(Command::Import(args)) => *args,
            other => panic!("{extra:?} did not parse as import: {other:?}"),
        }
    }

    fn select(extra: &[&str]) -> String {
        source_table(&args(extra)).unwrap().select()
    }

    #[test]
    fn the_drizzle_preset_reads_the_seed_schema() {
        assert_eq!(
            select(&["--preset", "drizzle-seed"]),
            "SELECT \"id\"::text, \"email\"::text, \"password_hash\"::text, \"name\"::text, \
             \"email_verified\"::text FROM \"users\" ORDER BY \"id\""
        );
    }

    #[test]
    fn the_prisma_preset_quotes_its_capitalised_table_and_has_no_verified_column() {
        assert_eq!(
            select(&["--preset", "prisma-seed"]),
            "SELECT \"id\"::text, \"email\"::text, \"password\"::text, \"name\"::text, \
             NULL::text FROM \"User\" ORDER BY \"id\""
        );
    }

    #[test]
    fn flags_replace_a_presets_names() {
        let sql = select(&[
            "--preset",
            "prisma-seed",
            "--table",
            "auth.Account",
            "--verified-column",
            "emailVerified",
        ]);
        assert!(sql.contains("FROM \"auth\".\"Account\""), "{sql}");
        assert!(sql.contains("\"emailVerified\"::text"), "{sql}");
    }

    #[test]
    fn without_a_preset_the_table_email_and_hash_are_needed() {
        let problems = source_table(&args(&[])).unwrap_err();
        let settings: Vec<_> = problems.iter().map(|(s, _)| *s).collect();
        assert_eq!(settings, ["table", "email_column", "hash_column"]);
        let sql = select(&[
            "--table",
            "accounts",
            "--email-column",
            "mail",
            "--hash-column",
            "pw",
        ]);
        assert_eq!(
            sql,
            "SELECT \"id\"::text, \"mail\"::text, \"pw\"::text, NULL::text, NULL::text FROM \
             \"accounts\" ORDER BY \"id\""
        );
    }

    #[test]
    fn injected_sql_in_any_name_is_refused() {
        for flag in [
            "--table",
            "--email-column",
            "--hash-column",
            "--name-column",
            "--verified-column",
            "--id-column",
        ] {
            let problems = source_table(&args(&[
                "--preset",
                "drizzle-seed",
                flag,
                "users; DROP TABLE x",
            ]))
            .unwrap_err();
            assert_eq!(problems.len(), 1, "{flag}: {problems:?}");
            assert!(
                problems[0].1.contains("not a plain identifier"),
                "{problems:?}"
            );
        }
        let quoted = source_table(&args(&["--preset", "drizzle-seed", "--table", "x\"y"]));
        assert!(quoted.is_err());
    }
}
