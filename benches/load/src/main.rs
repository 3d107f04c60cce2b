//! authd-load: the benchmark harness of issue 10, run by `scripts/bench`.
//!
//! In one run, side by side on one machine, it measures:
//! - the machine's raw password-hash rates (argon2id with authd's default parameters, bcrypt
//!   cost 10), on as many threads as there are cores;
//! - authd (its release binary, started here as a process of its own) on a fresh SQLite file
//!   and on a fresh PostgreSQL database: the no-op Health/Check, Introspect (tokens seen
//!   before, and the first check of each token), Refresh, Login and Signup at each caller count,
//!   Introspect paced at half its saturating rate, Introspect during a login flood, and the
//!   verifier library's local check in this process;
//! - authd with bcrypt cost 10, Login only, next to
//! - the Node.js stack it replaces (`benches/peers/node`), the same phases over HTTP/1.1.
//!
//! The main figure is server CPU time per request (utime + stime of the server process from
//! `/proc`, all threads), beside throughput and p50/p99. The load generator shares the machine,
//! so read throughput as relative, CPU per request as the server's own cost. The report is
//! Markdown: the table, then the targets computed from the same run.

mod authd;
mod http1;
mod measure;
mod node;
mod procfs;
mod report;
mod seed;
mod server;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use report::{Goal, Row, best, find};
use sea_orm::ConnectionTrait;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every user the harness makes has this password (15 characters or more, as authd requires).
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Parser)]
#[command(
    name = "authd-load",
    about = "authd's benchmark harness (issue 10)",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Tool>,
    /// authd's release binary.
    #[arg(long, default_value = "target/release/authd")]
    authd_bin: PathBuf,
    /// The Node.js peer's folder (installed with `npm ci`); empty to leave it out.
    // clap's path parser refuses an empty value, which scripts/bench passes when npm is missing.
    #[arg(long, default_value = "benches/peers/node", value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    node_peer: PathBuf,
    /// An administrative PostgreSQL URL; the run makes and drops databases of its own there.
    /// Empty to leave PostgreSQL (and the Node.js peer) out.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent callers, one run of each phase per count.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    callers: Vec<usize>,
    /// Tokens for the first-check phase (each introspected once).
    #[arg(long, default_value_t = 5000)]
    first_check_tokens: usize,
    /// The paced Introspect rate during the login flood.
    #[arg(long, default_value_t = 1000.0)]
    flood_introspect_rate: f64,
    /// Which targets run: any of sqlite, postgres, bcrypt, node.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sqlite,postgres,bcrypt,node"
    )]
    targets: Vec<String>,
    /// Database sizes (users, with a session each) of the scale phases, seeded through authd's
    /// store on SQLite and PostgreSQL (when those targets run); empty to leave them out.
    #[arg(long, default_value = "1000,1000000", value_parser = sizes)]
    scale_users: Sizes,
    /// Where the Markdown report goes (also printed).
    #[arg(long, default_value = "target/bench/report.md")]
    out: PathBuf,
}

/// A comma-separated list of database sizes, possibly empty.
#[derive(Clone)]
struct Sizes(Vec<usize>);

fn sizes(list: &str) -> Result<Sizes, String> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(format!("{s:?} is not a number of users above 0")),
            Ok(n) => Ok(n),
        })
        .collect::<Result<_, _>>()
        .map(Sizes)
}

#[derive(Subcommand)]
enum Tool {
    /// Fill an authd database (migrated first) with users who all have the harness's password
    /// (`scale<i>@bench.example`) and a session each, through authd's store.
    Seed {
        /// `sqlite://…?mode=rwc` or `postgres://…`.
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        users: usize,
    },
}

pub struct Plan {
    pub duration: Duration,
    pub callers: Vec<usize>,
    pub first_check_tokens: usize,
    pub flood_introspect_rate: f64,
}

impl Plan {
    pub fn max_callers(&self) -> usize {
        self.callers.iter().copied().max().unwrap_or(1)
    }

    /// The first-check phase runs at one count: 16, or the largest below it.
    pub fn first_check_callers(&self) -> usize {
        self.callers
            .iter()
            .copied()
            .filter(|&c| c <= 16)
            .max()
            .unwrap_or(1)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Tool::Seed {
        database_url,
        users,
    }) = &args.command
    {
        let seeded = seed::seed(database_url, *users, true).await?;
        eprintln!("authd-load seed: {}", seeded.summary());
        return Ok(());
    }
    anyhow::ensure!(
        !args.callers.is_empty() && !args.callers.contains(&0),
        "--callers needs counts above 0"
    );
    let plan = Plan {
        duration: Duration::from_secs_f64(args.seconds),
        callers: args.callers.clone(),
        first_check_tokens: args.first_check_tokens,
        flood_introspect_rate: args.flood_introspect_rate,
    };
    let logs = tempfile::Builder::new().prefix("authd-load-").tempdir()?;
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    eprintln!("authd-load: raw password-hash rates");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rows.push(raw_hash(
        "argon2id m=19456 KiB t=2 p=1",
        cores,
        plan.duration,
        || {
            let params =
                argon2::Params::new(19456, 2, 1, Some(32)).map_err(|e| anyhow::anyhow!("{e}"))?;
            let hasher =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let mut out = [0u8; 32];
            hasher
                .hash_password_into(PASSWORD.as_bytes(), b"sixteen byte salt", &mut out)
                .map_err(|e| anyhow::anyhow!("{e}"))
        },
    )?);
    rows.push(raw_hash("bcrypt cost 10", cores, plan.duration, || {
        bcrypt::hash_with_salt(PASSWORD, 10, [7; 16])?;
        Ok(())
    })?);

    // authd on SQLite: started once to make and migrate the file, then again on the existing
    // file, which is the start that is timed.
    let wants = |t: &str| args.targets.iter().any(|x| x == t);
    let (mut serving_ms, mut idle_rss_kib, mut after_load_rss_kib) = (None, None, None);
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    if wants("sqlite") {
        eprintln!("authd-load: authd on SQLite");
        let first = authd::Authd::start(
            &args.authd_bin,
            "authd-sqlite",
            &sqlite_url,
            &[],
            logs.path(),
        )
        .await?;
        first.server.stop().await?;
        let sqlite = authd::Authd::start(
            &args.authd_bin,
            "authd-sqlite",
            &sqlite_url,
            &[],
            logs.path(),
        )
        .await?;
        serving_ms = Some(sqlite.serving_after.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        idle_rss_kib = Some(sqlite.server.rss_kib()?);
        rows.extend(
            authd::phases(&sqlite, &plan, false)
                .await
                .context("authd on SQLite")?,
        );
        // The flood's hashing threads give their buffers back after 10 s idle.
        tokio::time::sleep(Duration::from_secs(12)).await;
        after_load_rss_kib = Some(sqlite.server.rss_kib()?);
        sqlite.server.stop().await?;
        for &users in &args.scale_users.0 {
            let file = dir.path().join(format!("scale-{users}.db"));
            let url = format!("sqlite://{}?mode=rwc", file.display());
            rows.extend(
                scale(
                    &args,
                    &plan,
                    "authd-sqlite",
                    &url,
                    users,
                    logs.path(),
                    &mut notes,
                )
                .await?,
            );
            std::fs::remove_file(&file).ok();
        }
    }

    let mut databases = Vec::new();
    let postgres_targets = ["postgres", "bcrypt", "node"].iter().any(|t| wants(t));
    if !args.postgres.is_empty() && postgres_targets {
        let admin = sea_orm::Database::connect(&args.postgres)
            .await
            .context("connect to PostgreSQL")?;
        let (base, _) = args
            .postgres
            .rsplit_once('/')
            .context("the PostgreSQL URL names a database")?;
        let mut fresh = async |what: &str| -> anyhow::Result<String> {
            let name = format!(
                "authd_load_{}_{}_{what}",
                std::process::id(),
                databases.len()
            );
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            databases.push(name.clone());
            Ok(format!("{base}/{name}"))
        };
        let pg_url = fresh("authd").await?;
        let bcrypt_url = fresh("bcrypt").await?;
        let node_url = fresh("node").await?;
        let outcome = async {
            if wants("postgres") {
                eprintln!("authd-load: authd on PostgreSQL");
                let pg = authd::Authd::start(
                    &args.authd_bin,
                    "authd-postgres",
                    &pg_url,
                    &[],
                    logs.path(),
                )
                .await?;
                rows.extend(
                    authd::phases(&pg, &plan, false)
                        .await
                        .context("authd on PostgreSQL")?,
                );
                pg.server.stop().await?;
                for &users in &args.scale_users.0 {
                    let url = fresh(&format!("scale{users}")).await?;
                    rows.extend(
                        scale(
                            &args,
                            &plan,
                            "authd-postgres",
                            &url,
                            users,
                            logs.path(),
                            &mut notes,
                        )
                        .await?,
                    );
                }
            }

            if wants("bcrypt") {
                eprintln!("authd-load: authd with bcrypt cost 10 on PostgreSQL (Login)");
                let bcrypt = authd::Authd::start(
                    &args.authd_bin,
                    "authd-postgres-bcrypt10",
                    &bcrypt_url,
                    &["--password-hash", "bcrypt", "--bcrypt-cost", "10"],
                    logs.path(),
                )
                .await?;
                rows.extend(
                    authd::phases(&bcrypt, &plan, true)
                        .await
                        .context("authd with bcrypt")?,
                );
                bcrypt.server.stop().await?;
            }

            if !wants("node") {
            } else if args.node_peer.as_os_str().is_empty() {
                notes.push("The Node.js peer was left out (`--node-peer ''`).".into());
            } else {
                eprintln!("authd-load: the Node.js peer on PostgreSQL");
                let node = node::Node::start(&args.node_peer, &node_url, logs.path()).await?;
                node::seed(
                    &args.node_peer,
                    &node_url,
                    plan.max_callers() + node::LOGIN_USERS,
                )
                .await?;
                rows.extend(
                    node::phases(&node, &plan)
                        .await
                        .context("the Node.js peer")?,
                );
                node.server.stop().await?;
            }
            anyhow::Ok(())
        }
        .await;
        for name in &databases {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .ok();
        }
        outcome?;
    } else if postgres_targets {
        notes.push("PostgreSQL and the Node.js peer were left out (`--postgres ''`).".into());
    }

    let goals = goals(
        &rows,
        &plan,
        &args.scale_users.0,
        serving_ms,
        idle_rss_kib,
        after_load_rss_kib,
        cores,
    );
    let mut out = String::new();
    out.push_str(&format!(
        "authd-load, {} s per phase, callers {:?}, {}; whole run {:.0} s\n\n",
        args.seconds,
        plan.callers,
        machine(),
        started.elapsed().as_secs_f64()
    ));
    out.push_str(&report::table(&rows));
    out.push('\n');
    out.push_str(&report::goals(&goals));
    for note in &notes {
        out.push_str(&format!("\n{note}\n"));
    }
    let errors: u64 = rows.iter().map(|r| r.sample.errors).sum();
    for r in rows.iter().filter(|r| r.sample.errors > 0) {
        out.push_str(&format!(
            "\n{} / {} / {} callers: {} errors, the first: {}\n",
            r.target,
            r.phase,
            r.callers,
            r.sample.errors,
            r.sample.first_error.as_deref().unwrap_or("")
        ));
    }
    print!("{out}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &out).with_context(|| format!("write {}", args.out.display()))?;
    eprintln!("authd-load: report in {}", args.out.display());
    anyhow::ensure!(errors == 0, "{errors} calls failed (see the report)");
    Ok(())
}

/// Seeds a database of `users` at `url`, starts authd on it and runs the scale phases; how long
/// seeding took goes into `notes`.
async fn scale(
    args: &Args,
    plan: &Plan,
    name: &str,
    url: &str,
    users: usize,
    log_dir: &std::path::Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("authd-load: {name} seeded with {users} users");
    let seeded = seed::seed(url, users, users >= 100_000)
        .await
        .with_context(|| format!("seed {users} users for {name}"))?;
    notes.push(format!(
        "Scale, {name}: seeded through the store, {}.",
        seeded.summary()
    ));
    let authd = authd::Authd::start(&args.authd_bin, name, url, &[], log_dir).await?;
    let rows = authd::scale_phases(&authd, users, plan.first_check_callers(), plan.duration)
        .await
        .with_context(|| format!("scale phases, {name}, {users} users"))?;
    authd.server.stop().await?;
    Ok(rows)
}

/// `hash` on `threads` threads for `duration`: hashes per second, as a row.
fn raw_hash(
    what: &str,
    threads: usize,
    duration: Duration,
    hash: impl Fn() -> anyhow::Result<()> + Sync,
) -> anyhow::Result<Row> {
    let own = std::process::id();
    let cpu_before = procfs::cpu_time(own)?;
    let start = Instant::now();
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut latencies = Vec::new();
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        hash()?;
                        latencies.push(t.elapsed().as_micros() as u32);
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut latencies_us: Vec<u32> = counts.into_iter().flatten().collect();
    latencies_us.sort_unstable();
    Ok(Row {
        target: "machine (raw hash, this process)".into(),
        phase: what.into(),
        callers: threads,
        sample: measure::Sample {
            ops: latencies_us.len() as u64,
            errors: 0,
            first_error: None,
            elapsed: start.elapsed(),
            latencies_us,
            cpu: procfs::cpu_time(own)?.saturating_sub(cpu_before),
        },
        cpu_of: "load process",
    })
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores ({model}), {mem_gib:.0} GiB")
}

fn ratio_goal(
    what: String,
    value: Option<f64>,
    target: &'static str,
    ok: impl Fn(f64) -> bool,
    unit: &str,
) -> Goal {
    Goal {
        what,
        figure: value.map_or("—".into(), |v| format!("{v:.2}{unit}")),
        target,
        met: value.map(ok),
    }
}

fn goals(
    rows: &[Row],
    plan: &Plan,
    scale_users: &[usize],
    serving_ms: Option<f64>,
    idle_rss_kib: Option<u64>,
    after_load_rss_kib: Option<u64>,
    cores: usize,
) -> Vec<Goal> {
    let mut goals = Vec::new();
    for target in ["authd-sqlite", "authd-postgres "] {
        let target = target.trim();
        for &c in &plan.callers {
            let ratio = find(rows, target, "Introspect (token seen", c)
                .zip(find(rows, target, "no-op", c))
                .map(|(i, n)| i.rate() / n.rate());
            goals.push(ratio_goal(
                format!("{target}: Introspect ÷ no-op throughput, {c} callers"),
                ratio,
                "≥ 0.80",
                |r| r >= 0.8,
                "",
            ));
        }
        let paced = rows
            .iter()
            .find(|r| r.target == target && r.phase.starts_with("Introspect paced"))
            .map(|r| r.sample.quantile_ms(0.99));
        goals.push(ratio_goal(
            format!("{target}: Introspect p99 at half the saturating rate"),
            paced,
            "< 1 ms",
            |v| v < 1.0,
            " ms",
        ));
        let flood = rows
            .iter()
            .find(|r| r.target == target && r.phase.contains("during a login flood"))
            .map(|r| r.sample.quantile_ms(0.99));
        goals.push(ratio_goal(
            format!("{target}: Introspect p99 during a login flood"),
            flood,
            "< 5 ms",
            |v| v < 5.0,
            " ms",
        ));
        let argon2 = find(rows, "machine", "argon2id", cores).map(|s| s.rate());
        let login = best(rows, target, "Login").map(|s| s.rate());
        goals.push(ratio_goal(
            format!("{target}: best Login rate ÷ raw argon2id rate"),
            login.zip(argon2).map(|(l, a)| l / a),
            "≥ 0.90",
            |r| r >= 0.9,
            "",
        ));
        let floor = if target == "authd-sqlite" {
            3000.0
        } else {
            2000.0
        };
        let refresh = find(rows, target, "Refresh", 64);
        goals.push(Goal {
            what: format!("{target}: Refresh at 64 callers"),
            figure: refresh.map_or("—".into(), |s| {
                format!("{:.0}/s, {:.0} µs CPU each", s.rate(), s.cpu_per_op_us())
            }),
            target: if floor > 2500.0 {
                "≥ 3,000/s and ≤ 250 µs"
            } else {
                "≥ 2,000/s and ≤ 250 µs"
            },
            met: refresh.map(|s| s.rate() >= floor && s.cpu_per_op_us() <= 250.0),
        });
    }
    if let (Some(&small), Some(&large)) = (scale_users.iter().min(), scale_users.iter().max())
        && small < large
    {
        let callers = plan.first_check_callers();
        for target in ["authd-sqlite", "authd-postgres"] {
            for phase in ["Login", "Refresh", "Introspect"] {
                let p50 = |users: usize| {
                    find(
                        rows,
                        &format!("scale: {target}, {users} users"),
                        phase,
                        callers,
                    )
                    .map(|s| s.quantile_ms(0.5))
                };
                goals.push(ratio_goal(
                    format!("{target}: {phase} p50 at {large} users ÷ at {small} users"),
                    p50(large).zip(p50(small)).map(|(l, s)| l / s),
                    "≤ 1.5",
                    |r| r <= 1.5,
                    "",
                ));
            }
        }
    }
    let node = "node";
    let cheaper = |authd_target: &str, authd_phase: &str, node_phase: &str| {
        plan.callers
            .iter()
            .filter_map(|&c| {
                let a = find(rows, authd_target, authd_phase, c)?;
                let n = find(rows, node, node_phase, c)?;
                Some(n.cpu_per_op_us() / a.cpu_per_op_us())
            })
            .fold(None, |min: Option<f64>, r| {
                Some(min.map_or(r, |m| m.min(r)))
            })
    };
    goals.push(ratio_goal(
        "Node CPU ÷ authd CPU per token check (/profile vs Introspect, PostgreSQL; lowest over caller counts)".into(),
        cheaper("authd-postgres", "Introspect (token seen", "token check"),
        "≥ 6",
        |r| r >= 6.0,
        "×",
    ));
    goals.push(ratio_goal(
        "Node CPU ÷ authd CPU per refresh (authd rotates, Node does not; lowest over caller counts)".into(),
        cheaper("authd-postgres", "Refresh", "Refresh"),
        "≥ 4",
        |r| r >= 4.0,
        "×",
    ));
    goals.push(ratio_goal(
        "Node CPU ÷ authd CPU per login, both bcrypt 10 (lowest over caller counts)".into(),
        cheaper("authd-postgres-bcrypt10", "Login", "Login"),
        "≥ 1 (authd no more expensive)",
        |r| r >= 1.0,
        "×",
    ));
    goals.push(ratio_goal(
        "authd gRPC SERVING after start, existing SQLite file".into(),
        serving_ms,
        "≤ 200 ms",
        |v| v <= 200.0,
        " ms",
    ));
    goals.push(ratio_goal(
        "authd idle RSS 1 s after SERVING".into(),
        idle_rss_kib.map(|k| k as f64 / 1024.0),
        "≤ 20 MB",
        |v| v <= 20.0,
        " MiB",
    ));
    goals.push(ratio_goal(
        "authd RSS 12 s after the last phase (login flood's hash memory given back)".into(),
        after_load_rss_kib.map(|k| k as f64 / 1024.0),
        "≤ 20 MB",
        |v| v <= 20.0,
        " MiB",
    ));
    goals
}
