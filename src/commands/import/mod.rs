//! `authd import`: users moved in from an existing app, bcrypt hashes and all, so that they log
//! in with the passwords they have (and have their hashes upgraded then).
//!
//! Rows are read in pages (a cursor in primary-key order, or lines of a file) by one task and
//! written by another, a batch per transaction. Each row is checked first (`row::check`); what
//! passes is written with `Store::import_users`, which skips whatever is there already, so a
//! second run writes nothing and reports every row as already imported. A bad row never stops
//! the run; only an unreachable database or unreadable source does (a non-zero exit). Killed
//! part-way, the transaction of the batch being written rolls back and a rerun picks up the
//! rest.
//!
//! Duplicates within the source are told from users already in authd by remembering a 64-bit
//! hash of every email and id seen in this run (16 MB per million rows, not the rows). The hash
//! only ever names the reason of a row the database already refused; in a dry run, where
//! nothing stays written, it is what finds a duplicate of an earlier batch.

mod jsonl;
pub mod queries;
mod report;
mod row;

use crate::config::{ImportArgs, redact, scrub, source_table};
use crate::crypto::hash_bounds::CostBounds;
use crate::db::connect;
use crate::db::{Store, StoreError};
use anyhow::Context;
use jsonl::{JsonlReader, Line};
use queries::{BulkUser, ImportOutcome, SourceReader, SourceRow};
use report::{Progress, Report};
use row::{Place, Skip};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;
use tokio::sync::mpsc;

/// One source row, or a line that is not one.
enum Item {
    Row(Place, SourceRow),
    Malformed(Place),
}

/// Where the rows come from.
enum Source {
    Db(SourceReader),
    Jsonl(JsonlReader),
}

impl Source {
    async fn next_page(&mut self, rows: u32) -> anyhow::Result<Vec<Item>> {
        match self {
            Self::Db(reader) => Ok(reader
                .next_page(rows)
                .await
                .context("reading the source table")?
                .into_iter()
                .map(|row| {
                    let place = Place {
                        line: None,
                        id: row.id.clone(),
                        detail: None,
                    };
                    Item::Row(place, row)
                })
                .collect()),
            Self::Jsonl(reader) => Ok(reader
                .next_page(rows as usize)
                .await
                .context("reading the JSON Lines file")?
                .into_iter()
                .map(|line| match line {
                    Line::Row(place, row) => Item::Row(place, row),
                    Line::Malformed(place) => Item::Malformed(place),
                })
                .collect()),
        }
    }

    async fn close(self) {
        if let Self::Db(reader) = self {
            reader.close().await;
        }
    }
}

/// Runs `authd import`; the report goes to stdout, progress to stderr.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = connect(&args.database).await?;
    let migrated = store
        .migrate()
        .await
        .context("applying database migrations");
    if let Err(err) = migrated {
        store.close().await;
        return Err(err);
    }
    let opened = open_source(&args).await;
    let (source, described, total) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            store.close().await;
            return Err(err);
        }
    };
    let result = import(&store, source, &args, total).await;
    store.close().await;
    let report = result?;
    print!(
        "{}",
        report.render(
            &described,
            started.elapsed(),
            args.dry_run,
            args.assume_verified
        )
    );
    Ok(())
}

/// The source, how the report names it, and its row count when known.
async fn open_source(args: &ImportArgs) -> anyhow::Result<(Source, String, Option<u64>)> {
    match (&args.from_db, &args.from_jsonl) {
        (Some(url), _) => {
            let table = source_table(args).map_err(|problems| {
                anyhow::anyhow!(
                    "{}",
                    problems
                        .iter()
                        .map(|(setting, why)| format!("{setting}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let reader = SourceReader::open(url, &table).await.map_err(|err| {
                let cause = scrub(
                    &crate::telemetry::error_chain(&anyhow::Error::from(err)),
                    url,
                );
                anyhow::anyhow!("reading {} from {}: {cause}", table.table, redact(url))
            })?;
            let total = reader.total();
            let described = format!("{} table {}", redact(url), table.table);
            Ok((Source::Db(reader), described, Some(total)))
        }
        (None, Some(path)) => {
            let reader = JsonlReader::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            Ok((Source::Jsonl(reader), path.display().to_string(), None))
        }
        (None, None) => anyhow::bail!("--from-db or --from-jsonl is needed"),
    }
}

/// Reads pages in a task of their own while the previous page is written.
async fn import(
    store: &Store,
    mut source: Source,
    args: &ImportArgs,
    total: Option<u64>,
) -> anyhow::Result<Report> {
    let (pages, mut received) = mpsc::channel::<anyhow::Result<Vec<Item>>>(2);
    let batch = args.batch_size;
    let reader = tokio::spawn(async move {
        loop {
            let page = source.next_page(batch).await;
            let last = page.as_ref().map_or(true, Vec::is_empty);
            if pages.send(page).await.is_err() || last {
                break;
            }
        }
        source.close().await;
    });
    let mut importer = Importer {
        store,
        dry_run: args.dry_run,
        assume_verified: args.assume_verified,
        bounds: args.hash_cost.bounds(),
        hasher: RandomState::new(),
        emails: HashSet::new(),
        ids: HashSet::new(),
        report: Report::default(),
    };
    let mut progress = Progress::new(total);
    let mut outcome = Ok(());
    while let Some(page) = received.recv().await {
        match page {
            Ok(items) if items.is_empty() => break,
            Ok(items) => {
                if let Err(err) = importer.batch(items).await {
                    outcome = Err(err);
                    break;
                }
                progress.tick(&importer.report);
            }
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
    }
    drop(received);
    let _ = reader.await;
    progress.finish(&importer.report);
    outcome.map(|()| importer.report)
}

struct Importer<'a> {
    store: &'a Store,
    dry_run: bool,
    assume_verified: bool,
    /// The most a kept hash may cost to check at login.
    bounds: CostBounds,
    hasher: RandomState,
    /// Hashes of the emails and ids of the valid rows of earlier batches.
    emails: HashSet<u64>,
    ids: HashSet<u64>,
    report: Report,
}

/// A checked row and what this run saw before it.
struct Pending {
    place: Place,
    named_from_email: bool,
    verified_assumed: bool,
    /// Its email (or id) came in an earlier batch, or earlier in this one.
    email_seen: bool,
    id_seen: bool,
    /// In an earlier batch (what a dry run can go by).
    email_seen_before: bool,
    id_seen_before: bool,
}

impl Importer<'_> {
    async fn batch(&mut self, items: Vec<Item>) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let mut users = Vec::with_capacity(items.len());
        let mut pending = Vec::with_capacity(items.len());
        let (mut emails, mut ids) = (HashSet::new(), HashSet::new());
        for item in items {
            self.report.read += 1;
            let (place, row) = match item {
                Item::Row(place, row) => (place, row),
                Item::Malformed(place) => {
                    self.report.skip(Skip::MalformedLine, &place);
                    continue;
                }
            };
            let checked = match row::check(row, &self.bounds, self.assume_verified, now) {
                Ok(checked) => checked,
                Err(reason) => {
                    self.report.skip(reason, &place);
                    continue;
                }
            };
            let email = self.hasher.hash_one(checked.user.email.as_str());
            let id = self.hasher.hash_one(checked.user.ext_id.as_deref());
            let (email_seen_before, id_seen_before) =
                (self.emails.contains(&email), self.ids.contains(&id));
            pending.push(Pending {
                place,
                named_from_email: checked.named_from_email,
                verified_assumed: checked.verified_assumed,
                email_seen: !emails.insert(email) || email_seen_before,
                id_seen: !ids.insert(id) || id_seen_before,
                email_seen_before,
                id_seen_before,
            });
            users.push(checked.user);
        }
        self.emails.extend(emails);
        self.ids.extend(ids);
        let outcomes = self.write(&users).await?;
        for (row, outcome) in pending.iter().zip(outcomes) {
            let skip = match outcome {
                Ok(ImportOutcome::Inserted) if self.dry_run && row.id_seen_before => {
                    Some(Skip::DuplicateIdInSource)
                }
                Ok(ImportOutcome::Inserted) if self.dry_run && row.email_seen_before => {
                    Some(Skip::DuplicateEmailInSource)
                }
                Ok(ImportOutcome::Inserted) => None,
                Ok(ImportOutcome::ExtIdTaken) if row.id_seen => Some(Skip::DuplicateIdInSource),
                Ok(ImportOutcome::ExtIdTaken) => Some(Skip::AlreadyImported),
                Ok(ImportOutcome::EmailTaken) if row.email_seen => {
                    Some(Skip::DuplicateEmailInSource)
                }
                Ok(ImportOutcome::EmailTaken) => Some(Skip::EmailTaken),
                Ok(ImportOutcome::Conflicted) => Some(Skip::Conflicted),
                Err(()) => Some(Skip::RefusedByDatabase),
            };
            match skip {
                Some(reason) => self.report.skip(reason, &row.place),
                None => {
                    self.report.imported += 1;
                    self.report.named_from_email += u64::from(row.named_from_email);
                    self.report.verified_assumed += u64::from(row.verified_assumed);
                }
            }
        }
        Ok(())
    }

    /// The batch in one transaction. Should the database refuse the batch for one of its rows
    /// (nothing the checks know of), each row is written on its own, so that only that row is
    /// lost; `Err(())` marks it. An outage stops the run.
    async fn write(&self, users: &[BulkUser]) -> anyhow::Result<Vec<Result<ImportOutcome, ()>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.import_users(users, self.dry_run).await {
            Ok(outcomes) => return Ok(outcomes.into_iter().map(Ok).collect()),
            Err(err @ StoreError::Unavailable(_)) => {
                return Err(err).context("writing to authd's database");
            }
            Err(err) => tracing::warn!(
                "a batch was refused ({}); writing its rows one by one",
                self.without_hashes(&err, users)
            ),
        }
        let mut outcomes = Vec::with_capacity(users.len());
        for user in users {
            match self
                .store
                .import_users(std::slice::from_ref(user), self.dry_run)
                .await
            {
                Ok(outcome) => outcomes.push(outcome.first().copied().ok_or(())),
                Err(err @ StoreError::Unavailable(_)) => {
                    return Err(err).context("writing to authd's database");
                }
                Err(err) => {
                    tracing::warn!(
                        "a row was refused by authd's database ({})",
                        self.without_hashes(&err, std::slice::from_ref(user))
                    );
                    outcomes.push(Err(()));
                }
            }
        }
        Ok(outcomes)
    }

    /// The error's whole chain with no password hash of `users` in it.
    fn without_hashes(&self, err: &StoreError, users: &[BulkUser]) -> String {
        let mut text = crate::telemetry::error_chain(&anyhow::anyhow!("{err}: {err:?}"));
        for user in users {
            text = text.replace(&user.password_hash, "***");
        }
        text
    }
}
