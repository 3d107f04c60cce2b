//! How many statements authd sends to the database, by kind and table: what a use case costs
//! in round trips, for operators (`authd_db_statements_total` on /metrics) and for the tests
//! that keep the hot paths short.
//!
//! Counted through SeaORM's metric callback, which sees every statement run on the pool or in a
//! transaction once it has been answered; BEGIN, COMMIT and unprepared statements (PRAGMA, the
//! advisory lock) go around it and are not counted.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sea_orm::DatabaseConnection;

/// The labels of one count: `statement` (select, insert, update, delete or other) and `table`
/// (the table it reads from, writes into or updates first; "other" when none of authd's).
pub type StatementLabels = [(&'static str, &'static str); 2];

/// The statement counts of one connection pool, shared by every clone.
pub type StatementCounts = Family<StatementLabels, Counter>;

/// authd's tables: the only values `table` takes besides "other", so the label stays bounded.
const TABLES: [&str; 13] = [
    "audit_events",
    "mail_outbox",
    "mfa_challenges",
    "one_time_tokens",
    "recovery_codes",
    "refresh_tokens",
    "revocations",
    "seaql_migrations",
    "sessions",
    "signing_keys",
    "throttles",
    "totp_factors",
    "users",
];

/// Counts every statement `db` runs from now on into `counts`.
pub(super) fn count_into(db: &mut DatabaseConnection, counts: StatementCounts) {
    db.set_metric_callback(move |info| {
        counts.get_or_create(&labels(&info.statement.sql)).inc();
    });
}

/// The kind of `sql` and the first of authd's tables it names after FROM, INTO or UPDATE (a
/// subquery in FROM is looked into). It runs for every statement, so it reads the text once,
/// word by word, and stops at the first table it knows; nothing is allocated.
fn labels(sql: &str) -> StatementLabels {
    let is_keyword = |word: &str| {
        ["from", "into", "update"]
            .iter()
            .any(|keyword| word.eq_ignore_ascii_case(keyword))
    };
    let mut words = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("");
    let statement = ["select", "insert", "update", "delete"]
        .into_iter()
        .find(|kind| first.eq_ignore_ascii_case(kind))
        .unwrap_or("other");
    let mut after_keyword = is_keyword(first);
    let mut table = "other";
    for word in words {
        if after_keyword {
            let name = word.trim_matches(|c| c == '"' || c == '`');
            if let Some(known) = TABLES.iter().find(|known| known.eq_ignore_ascii_case(name)) {
                table = known;
                break;
            }
        }
        after_keyword = is_keyword(word);
    }
    [("statement", statement), ("table", table)]
}

#[cfg(test)]
mod tests {
    use super::labels;

    #[test]
    fn statements_are_labelled_by_kind_and_first_table() {
        let cases = [
            (
                r#"SELECT "users"."id", "users"."email" FROM "users" WHERE "users"."email" = $1 LIMIT $2"#,
                ("select", "users"),
            ),
            (
                "INSERT INTO throttles (id, scope) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET \
                 failures = 0 RETURNING id, failures",
                ("insert", "throttles"),
            ),
            (
                r#"UPDATE "users" SET "password_hash" = "password_hash" WHERE "users"."id" = $1"#,
                ("update", "users"),
            ),
            (
                "DELETE FROM throttles WHERE expires_at <= ?",
                ("delete", "throttles"),
            ),
            (
                r#"SELECT "refresh_tokens"."id" FROM "refresh_tokens" LEFT JOIN "sessions" ON 1"#,
                ("select", "refresh_tokens"),
            ),
            (
                r#"SELECT COUNT(*) AS num_items FROM (SELECT "mail_outbox"."id" FROM "mail_outbox") AS "sub""#,
                ("select", "mail_outbox"),
            ),
            ("SELECT 1", ("select", "other")),
            ("SELECT x FROM pg_stat_activity", ("select", "other")),
            ("", ("other", "other")),
        ];
        for (sql, (statement, table)) in cases {
            assert_eq!(
                labels(sql),
                [("statement", statement), ("table", table)],
                "{sql}"
            );
        }
    }
}
