//! The Markdown report: one table of every phase, then the targets of issue 10 computed from
//! the same run.

use crate::measure::Sample;
use std::fmt::Write;

pub struct Row {
    pub target: String,
    pub phase: String,
    pub callers: usize,
    pub sample: Sample,
    /// Whose CPU time `sample.cpu` is: "server" or "load process".
    pub cpu_of: &'static str,
}

/// A target of the issue, checked against this run's figures.
pub struct Goal {
    pub what: String,
    pub figure: String,
    pub target: &'static str,
    /// `None` when this run has no figure for it (a target left out of the run).
    pub met: Option<bool>,
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| target | phase | callers | ops/s | p50 ms | p99 ms | CPU µs/op | CPU of | errors |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|---:|\n");
    for r in rows {
        let s = &r.sample;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {} |",
            r.target,
            r.phase,
            r.callers,
            s.rate(),
            s.quantile_ms(0.5),
            s.quantile_ms(0.99),
            s.cpu_per_op_us(),
            r.cpu_of,
            s.errors
        );
    }
    out
}

pub fn goals(goals: &[Goal]) -> String {
    let mut out = String::new();
    out.push_str("| what | this run | target | met |\n|---|---:|---|---|\n");
    for g in goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            g.what, g.figure, g.target, met
        );
    }
    out
}

/// The first row of `target` whose phase starts with `phase`, at `callers`.
pub fn find<'a>(rows: &'a [Row], target: &str, phase: &str, callers: usize) -> Option<&'a Sample> {
    rows.iter()
        .find(|r| {
            r.target.starts_with(target) && r.phase.starts_with(phase) && r.callers == callers
        })
        .map(|r| &r.sample)
}

/// The row of `target` whose phase starts with `phase` with the highest throughput.
pub fn best<'a>(rows: &'a [Row], target: &str, phase: &str) -> Option<&'a Sample> {
    rows.iter()
        .filter(|r| r.target.starts_with(target) && r.phase.starts_with(phase))
        .map(|r| &r.sample)
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
}
