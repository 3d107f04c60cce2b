//! What `authd import` tells: a progress line on stderr while it runs (redrawn in place on a
//! terminal, a new line every few seconds otherwise) and the report at the end.

use super::row::{Place, Skip};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Example places kept per reason.
const EXAMPLES: usize = 5;

/// The counts of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub read: u64,
    pub imported: u64,
    pub skipped: BTreeMap<Skip, (u64, Vec<String>)>,
    /// Imported users whose name is their email's local part.
    pub named_from_email: u64,
    /// Imported users whose verification --assume-verified decided.
    pub verified_assumed: u64,
}

impl Report {
    pub fn skip(&mut self, reason: Skip, place: &Place) {
        let (count, examples) = self.skipped.entry(reason).or_default();
        *count += 1;
        if examples.len() < EXAMPLES {
            examples.push(place.to_string());
        }
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().map(|(count, _)| count).sum()
    }

    /// The report, as printed at the end.
    pub fn render(&self, source: &str, elapsed: Duration, dry_run: bool, assume: bool) -> String {
        let seconds = elapsed.as_secs_f64();
        let mut out = format!(
            "authd import from {source}{}: {} rows read in {seconds:.1} s ({:.0} rows/s)\n",
            if dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            },
            self.read,
            self.read as f64 / seconds.max(1e-3),
        );
        out.push_str(&format!("imported: {}\n", self.imported));
        out.push_str(&format!("skipped: {}\n", self.skipped_total()));
        for (reason, (count, examples)) in &self.skipped {
            out.push_str(&format!(
                "  {}: {count} (e.g. {})\n",
                reason.describe(),
                examples.join(", ")
            ));
        }
        if self.named_from_email > 0 {
            out.push_str(&format!(
                "note: {} imported user(s) had no name; their email's local part is their name\n",
                self.named_from_email
            ));
        }
        if self.verified_assumed > 0 {
            out.push_str(&format!(
                "note: the source does not say whether {} imported user(s) verified their email; \
                 they are {}\n",
                self.verified_assumed,
                if assume {
                    "verified (--assume-verified)"
                } else {
                    "unverified and must verify before they log in (--assume-verified would \
                     trust them)"
                }
            ));
        }
        out
    }
}

/// The progress line on stderr.
pub struct Progress {
    started: Instant,
    last: Option<Instant>,
    tty: bool,
    total: Option<u64>,
    /// Rows read when the line was last drawn.
    drawn: Option<u64>,
}

impl Progress {
    pub fn new(total: Option<u64>) -> Self {
        Self {
            started: Instant::now(),
            last: None,
            tty: std::io::stderr().is_terminal(),
            total,
            drawn: None,
        }
    }

    /// Redraws the line if it is time to.
    pub fn tick(&mut self, report: &Report) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let due = self.last.is_none_or(|last| last.elapsed() >= every);
        if due {
            self.last = Some(Instant::now());
            self.draw(report);
        }
    }

    /// The last line, then the terminal's cursor on a line of its own.
    pub fn finish(&mut self, report: &Report) {
        if self.drawn != Some(report.read) {
            self.draw(report);
        }
        if self.tty {
            eprintln!();
        }
    }

    fn draw(&mut self, report: &Report) {
        self.drawn = Some(report.read);
        let seconds = self.started.elapsed().as_secs_f64();
        let of = self.total.map(|t| format!(" of {t}")).unwrap_or_default();
        let line = format!(
            "authd import: {}{of} rows read, {} imported, {} skipped ({:.0} rows/s, {seconds:.0} s)",
            report.read,
            report.imported,
            report.skipped_total(),
            report.read as f64 / seconds.max(1e-3),
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
