//! Closed-loop and paced callers, and what one phase measured.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One call of caller `i`: `Ok(true)` to go on, `Ok(false)` when it has no more work.
pub type Call = Arc<dyn Fn(usize) -> BoxFuture<anyhow::Result<bool>> + Send + Sync>;

/// What one phase measured.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of each successful call, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// CPU time the measured process used during the phase.
    pub cpu: Duration,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.latencies_us[rank]) / 1000.0
    }

    /// CPU time per successful call, in microseconds.
    pub fn cpu_per_op_us(&self) -> f64 {
        if self.ops == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e6 / self.ops as f64
    }
}

/// How a phase's callers issue their calls.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each caller sends its next call as soon as the last one answers (saturating load).
    ClosedLoop,
    /// All callers together send `per_second` calls, evenly spaced; a latency is measured from
    /// when the call was due, so a stalled server counts against itself (no coordinated
    /// omission).
    Rate { per_second: f64 },
}

/// Runs `callers` callers of `call` for `duration` (or until every caller says it is done),
/// and reads `cpu` (the measured process's CPU time) before and after.
pub async fn run(
    callers: usize,
    duration: Duration,
    pace: Pace,
    cpu: &(dyn Fn() -> anyhow::Result<Duration> + Sync),
    call: Call,
) -> anyhow::Result<Sample> {
    let cpu_before = cpu()?;
    let start = Instant::now();
    let deadline = start + duration;
    let interval = match pace {
        Pace::ClosedLoop => None,
        Pace::Rate { per_second } => Some(Duration::from_secs_f64(
            callers as f64 / per_second.max(1e-3),
        )),
    };
    let mut tasks = Vec::with_capacity(callers);
    for i in 0..callers {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut sample = Sample::default();
            // Paced callers start spread over one interval, not all at once.
            let mut due =
                start + interval.map_or(Duration::ZERO, |d| d * i as u32 / callers as u32);
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = if interval.is_some() {
                    due
                } else {
                    Instant::now()
                };
                if sent >= deadline {
                    break;
                }
                match call(i).await {
                    Ok(go_on) => {
                        let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        sample.ops += 1;
                        sample.latencies_us.push(us);
                        if !go_on {
                            break;
                        }
                    }
                    Err(err) => {
                        sample.errors += 1;
                        if sample.first_error.is_none() {
                            sample.first_error = Some(format!("{err:#}"));
                        }
                    }
                }
                if let Some(interval) = interval {
                    due += interval;
                }
            }
            sample
        }));
    }
    let mut total = Sample::default();
    for task in tasks {
        let sample = task.await?;
        total.ops += sample.ops;
        total.errors += sample.errors;
        total.first_error = total.first_error.or(sample.first_error);
        total.latencies_us.extend(sample.latencies_us);
    }
    total.elapsed = start.elapsed();
    total.cpu = cpu()?.saturating_sub(cpu_before);
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// Wraps an async closure as a [`Call`].
pub fn call<F, Fut>(f: F) -> Call
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<bool>> + Send + 'static,
{
    Arc::new(move |i| Box::pin(f(i)))
}
