//! `engine-bench`: the Portcullis authorization snapshot side by side with a plain hash-map
//! index, `cedar-policy` and `casbin`, on one generated tenant, one thread. Every engine answers
//! the same questions; any answer that differs from the snapshot's fails the run (exit 1), so
//! the figures compare engines that agree. Its own Cargo workspace: the product never builds
//! the peers.

mod alloc;
mod casbin;
mod cedar;
mod data;
mod hashmap;
mod searches;
mod updates;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use portcullis_core::engine::model::Check;
use portcullis_core::engine::snapshot::Snapshot;

use crate::alloc::{Counting, live_bytes};
use crate::data::Tenant;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineName {
    Portcullis,
    Hashmap,
    Cedar,
    Casbin,
}

impl EngineName {
    fn label(self) -> &'static str {
        match self {
            Self::Portcullis => "Portcullis snapshot",
            Self::Hashmap => "hash-map index",
            Self::Cedar => "cedar-policy 4 (templates)",
            Self::Casbin => "casbin 2 (RBAC + ABAC matcher)",
        }
    }
}

/// Authorization checks in process, one thread: build time, memory, latency and throughput of
/// each engine on the same generated tenant and the same questions.
#[derive(Debug, Parser)]
#[command(name = "engine-bench", version)]
struct Options {
    /// Fraction of the full tenant (1.0 = 100k users, 10k groups, 1k roles, 1M assignments,
    /// 1k business units, 1M records, 100k shares).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Questions in the sample (slow peers answer a prefix of it, see --budget).
    #[arg(long, default_value_t = 200_000)]
    checks: usize,
    /// Seed of the tenant and of the questions.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Engines to run, comma-separated; the Portcullis snapshot always runs (it is the
    /// reference the others must agree with).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "portcullis,hashmap,cedar,casbin"
    )]
    engines: Vec<EngineName>,
    /// Runs per engine (each builds the engine afresh); medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds an engine may spend on each pass over the sample per run; a slower engine
    /// answers only the prefix it reached in its first run, and every later pass uses that
    /// same prefix.
    #[arg(long, default_value_t = 20.0)]
    budget: f64,
    /// Changes of each kind applied to the Portcullis snapshot one at a time, to time an
    /// update against a rebuild (0: none).
    #[arg(long, default_value_t = 1000)]
    updates: usize,
    /// Search pages of each kind (who may, what may) as the server pages them, against only
    /// walking in order on a tenth of them (0: none).
    #[arg(long, default_value_t = 200)]
    searches: usize,
}

/// What one run of one engine measured.
struct Run {
    build: Duration,
    memory: usize,
    /// Per-check latencies in nanoseconds, timer overhead subtracted, sorted: all, then
    /// those of the allowed and of the denied checks.
    latencies: Vec<u64>,
    allowed: Vec<u64>,
    denied: Vec<u64>,
    throughput: f64,
}

struct Summary {
    engine: EngineName,
    size: String,
    build: Duration,
    memory: usize,
    p50: f64,
    p99: f64,
    p50_allowed: f64,
    p50_denied: f64,
    throughput: f64,
    answered: usize,
    allowed: f64,
    mismatches: usize,
    runs: Vec<f64>,
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64
}

/// What reading the clock twice costs, in nanoseconds (median of many empty pairs).
fn timer_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..200_000)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Builds an engine `runs` times and times its answers. The first run decides how many of
/// the checks fit in the budget; the answers of that prefix are returned for comparison.
fn measure<T>(
    options: &Options,
    checks: &[Check],
    overhead: u64,
    build: impl Fn() -> T,
    decide: impl Fn(&T, Check) -> bool,
) -> (Vec<Run>, Vec<bool>, String, usize)
where
    T: Describe,
{
    let budget = Duration::from_secs_f64(options.budget);
    let mut runs = Vec::new();
    let mut answers: Vec<bool> = Vec::new();
    let mut count = checks.len();
    let mut size = String::new();
    for run in 0..options.runs.max(1) {
        let before = live_bytes();
        let started = Instant::now();
        let engine = build();
        let build_time = started.elapsed();
        let memory = live_bytes().saturating_sub(before);
        size = engine.describe();

        // Latency: each check timed on its own.
        let mut latencies: Vec<u64> = Vec::with_capacity(count);
        let mut these: Vec<bool> = Vec::with_capacity(count);
        let pass = Instant::now();
        for check in &checks[..count] {
            let start = Instant::now();
            let allowed = decide(&engine, black_box(*check));
            let took = start.elapsed().as_nanos() as u64;
            these.push(black_box(allowed));
            latencies.push(took.saturating_sub(overhead));
            if run == 0 && pass.elapsed() > budget {
                break;
            }
        }
        if run == 0 {
            count = these.len();
        }
        let (mut allowed, mut denied): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        for (took, yes) in latencies.iter().zip(&these) {
            if *yes {
                allowed.push(*took);
            } else {
                denied.push(*took);
            }
        }
        if run == 0 {
            answers = these;
        }
        latencies.sort_unstable();
        allowed.sort_unstable();
        denied.sort_unstable();

        // Throughput: the same checks back to back, no clock in between.
        let start = Instant::now();
        let mut yes = 0usize;
        for check in &checks[..count] {
            yes += usize::from(decide(&engine, black_box(*check)));
        }
        let elapsed = start.elapsed();
        black_box(yes);
        runs.push(Run {
            build: build_time,
            memory,
            latencies,
            allowed,
            denied,
            throughput: count as f64 / elapsed.as_secs_f64(),
        });
        drop(engine);
        eprintln!(
            "  run {}: build {:.2} s, {} checks, {:.0} checks/s",
            run + 1,
            build_time.as_secs_f64(),
            count,
            runs.last().map_or(0.0, |r| r.throughput)
        );
    }
    (runs, answers, size, count)
}

/// A line saying how big an engine's rule set is.
trait Describe {
    fn describe(&self) -> String;
}

impl Describe for Snapshot {
    fn describe(&self) -> String {
        "indexed snapshot".to_string()
    }
}

impl Describe for hashmap::HashMapIndex {
    fn describe(&self) -> String {
        "hash maps".to_string()
    }
}

impl Describe for cedar::CedarEngine {
    fn describe(&self) -> String {
        format!("{} policies", self.policy_count())
    }
}

impl Describe for casbin::CasbinEngine {
    fn describe(&self) -> String {
        format!("{} policy lines", self.policy_lines())
    }
}

fn summarize(
    engine: EngineName,
    (runs, answers, size, count): (Vec<Run>, Vec<bool>, String, usize),
    reference: &[bool],
    checks: &[Check],
) -> Summary {
    let mismatches: Vec<usize> = (0..count)
        .filter(|i| answers[*i] != reference[*i])
        .collect();
    for i in mismatches.iter().take(5) {
        eprintln!(
            "MISMATCH {}: {:?}: engine says {}, Portcullis says {}",
            engine.label(),
            checks[*i],
            answers[*i],
            reference[*i]
        );
    }
    let throughputs: Vec<f64> = runs.iter().map(|r| r.throughput).collect();
    Summary {
        engine,
        size,
        build: median(&runs.iter().map(|r| r.build).collect::<Vec<_>>()),
        memory: median(&runs.iter().map(|r| r.memory).collect::<Vec<_>>()),
        p50: median(
            &runs
                .iter()
                .map(|r| percentile(&r.latencies, 0.50))
                .collect::<Vec<_>>(),
        ),
        p99: median(
            &runs
                .iter()
                .map(|r| percentile(&r.latencies, 0.99))
                .collect::<Vec<_>>(),
        ),
        p50_allowed: median(
            &runs
                .iter()
                .map(|r| percentile(&r.allowed, 0.50))
                .collect::<Vec<_>>(),
        ),
        p50_denied: median(
            &runs
                .iter()
                .map(|r| percentile(&r.denied, 0.50))
                .collect::<Vec<_>>(),
        ),
        throughput: median(&throughputs),
        answered: count,
        allowed: answers.iter().filter(|a| **a).count() as f64 / count.max(1) as f64,
        mismatches: mismatches.len(),
        runs: throughputs,
    }
}

fn micros(ns: f64) -> String {
    let us = ns / 1000.0;
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn rate(per_second: f64) -> String {
    if per_second >= 10_000.0 {
        format!("{:.2} M/s", per_second / 1e6)
    } else {
        format!("{per_second:.1}/s")
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    let mut engines = vec![EngineName::Portcullis];
    engines.extend(
        options
            .engines
            .iter()
            .copied()
            .filter(|e| *e != EngineName::Portcullis),
    );

    eprintln!(
        "engine-bench: generating the tenant at scale {} (seed {})",
        options.scale, options.seed
    );
    let started = Instant::now();
    let before = live_bytes();
    let tenant = Tenant::generate(options.scale, options.seed);
    let model_bytes = live_bytes().saturating_sub(before);
    let checks = tenant.checks(options.checks, options.seed);
    let s = tenant.sizes;
    eprintln!(
        "  {:.1} s: {} users, {} groups, {} roles, {} units, {} records, {} assignments, {} shares, {} denies; {} checks",
        started.elapsed().as_secs_f64(),
        s.users,
        s.groups,
        s.roles,
        s.units,
        s.records,
        s.assignments,
        s.shares,
        s.denies,
        checks.len()
    );
    let overhead = timer_overhead();
    eprintln!("  timer overhead (subtracted from each latency): {overhead} ns");

    let users = tenant.users;
    let model = &tenant.model;
    let mut summaries: Vec<Summary> = Vec::new();
    let mut reference: Vec<bool> = Vec::new();
    for engine in engines {
        eprintln!("engine-bench: {}", engine.label());
        let measured = match engine {
            EngineName::Portcullis => measure(
                &options,
                &checks,
                overhead,
                || Snapshot::build(model).expect("the generated model is consistent"),
                |e, c| e.decide(c),
            ),
            EngineName::Hashmap => measure(
                &options,
                &checks,
                overhead,
                || hashmap::HashMapIndex::build(model),
                |e, c| e.decide(c),
            ),
            EngineName::Cedar => measure(
                &options,
                &checks,
                overhead,
                || cedar::CedarEngine::build(model, users),
                |e, c| e.decide(c),
            ),
            EngineName::Casbin => measure(
                &options,
                &checks,
                overhead,
                || casbin::CasbinEngine::build(model, users),
                |e, c| e.decide(c),
            ),
        };
        if engine == EngineName::Portcullis {
            reference = measured.1.clone();
            assert_eq!(
                reference.len(),
                checks.len(),
                "the snapshot must answer the whole sample within the budget"
            );
        }
        summaries.push(summarize(engine, measured, &reference, &checks));
    }

    print_report(&options, &tenant, model_bytes, overhead, &summaries);
    if options.updates > 0 {
        eprintln!("engine-bench: updates, {} of each kind", options.updates);
        print_updates(&updates::measure(&tenant, options.updates, options.seed));
    }
    let mut mismatched: usize = summaries.iter().map(|s| s.mismatches).sum();
    if options.searches > 0 {
        eprintln!(
            "engine-bench: searches, {} pages of each kind",
            options.searches
        );
        let found = searches::measure(&tenant, options.searches, 50, options.seed);
        print_searches(&found);
        mismatched += found.mismatches;
    }
    if mismatched > 0 {
        eprintln!("engine-bench: {mismatched} answers differ from the Portcullis snapshot");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_updates(u: &updates::Updates) {
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "Updates: {} changes of each kind, each applied alone to the snapshot the last one produced. A rebuild (what every change cost before) took {:.2} s for a snapshot of {:.1} MiB.",
        u.per_kind,
        u.rebuild.as_secs_f64(),
        mib(u.snapshot_bytes)
    );
    println!();
    println!(
        "| change | apply p50 | apply p99 | rebuild ÷ apply p50 | memory the next snapshot adds (median) | of the snapshot |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for k in &u.kinds {
        println!(
            "| {} | {} | {} | {:.0}× | {:.1} KiB | {:.3} % |",
            k.name,
            micros(k.p50.as_nanos() as f64),
            micros(k.p99.as_nanos() as f64),
            u.rebuild.as_secs_f64() / k.p50.as_secs_f64(),
            k.added_bytes as f64 / 1024.0,
            100.0 * k.added_bytes as f64 / u.snapshot_bytes as f64
        );
    }
}

fn print_searches(s: &searches::Searches) {
    println!();
    println!(
        "Searches: pages of {} as the server pages them (walking in order until the answer proves sparse, then from the reverse indexes), against only walking in order (on a tenth of the pages); the pages must agree.",
        s.page
    );
    println!();
    println!(
        "| search | page p50 | page p99 | pages that turned to the indexes | walk-only p50 | walk-only p99 | answers per page (median) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for k in &s.kinds {
        println!(
            "| {} | {} | {} | {} of {} | {} | {} | {} |",
            k.name,
            micros(k.indexed.p50.as_nanos() as f64),
            micros(k.indexed.p99.as_nanos() as f64),
            k.from_candidates,
            k.indexed.pages,
            micros(k.scanned.p50.as_nanos() as f64),
            micros(k.scanned.p99.as_nanos() as f64),
            k.answers
        );
    }
}

fn print_report(
    options: &Options,
    tenant: &Tenant,
    model_bytes: usize,
    overhead: u64,
    summaries: &[Summary],
) {
    let s = tenant.sizes;
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "### scale {} — {} users, {} groups, {} roles, {} units, {} records, {} assignments, {} shares, {} denies",
        options.scale,
        s.users,
        s.groups,
        s.roles,
        s.units,
        s.records,
        s.assignments,
        s.shares,
        s.denies
    );
    println!();
    println!(
        "Seed {}, {} checks sampled, medians of {} runs; one thread; latency = each check timed alone, minus the {} ns timer overhead; checks/s = the same checks back to back. Input model: {:.1} MiB.",
        options.seed,
        options.checks,
        options.runs,
        overhead,
        mib(model_bytes)
    );
    println!();
    println!(
        "| engine | rules | build | memory | p50 | p99 | p50 allowed / denied | checks/s (runs) | checks answered | allowed | Portcullis is × faster | memory vs Portcullis | mismatches |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let base = &summaries[0];
    for r in summaries {
        let runs: Vec<String> = r.runs.iter().map(|t| rate(*t)).collect();
        println!(
            "| {} | {} | {:.2} s | {:.1} MiB | {} | {} | {} / {} | **{}** ({}) | {} | {:.1} % | {} | {} | {} |",
            r.engine.label(),
            r.size,
            r.build.as_secs_f64(),
            mib(r.memory),
            micros(r.p50),
            micros(r.p99),
            micros(r.p50_allowed),
            micros(r.p50_denied),
            rate(r.throughput),
            runs.join(" · "),
            r.answered,
            r.allowed * 100.0,
            if r.engine == EngineName::Portcullis {
                "—".to_string()
            } else {
                format!("{:.1}×", base.throughput / r.throughput)
            },
            if r.engine == EngineName::Portcullis {
                "—".to_string()
            } else {
                format!("{:.2}×", r.memory as f64 / base.memory.max(1) as f64)
            },
            r.mismatches
        );
    }
    println!();
}
