//! The simulation as tests: many seeds hold every promise, a seed replays
//! byte for byte, and the negative controls are caught.
//!
//! `S3E_SIM_SEEDS` sets the seed count of [`seeds_hold_every_promise`]
//! (2,000 by default; about 200 for mutation runs), `S3E_SIM_FIRST` the
//! first seed. `scripts/sim` runs [`explore`], which also replays one seed
//! (`S3E_SIM_SEED`) and prints its whole trace.

use super::*;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Seeds from 0 until one breaks a promise the way `broke` says, at most
/// `max`: a negative control stops at its first catch.
fn first_caught(opts: Opts, max: u64, broke: impl Fn(&str) -> bool) -> Option<Outcome> {
    let chunk = 2 * threads() as u64;
    let mut first = 0;
    while first < max {
        let (failed, _) = run_many(first, chunk.min(max - first), threads(), opts);
        if let Some(o) = failed
            .into_iter()
            .find(|o| o.violations.iter().any(|v| broke(v)))
        {
            return Some(o);
        }
        first += chunk;
    }
    None
}

fn reports(failed: &[Outcome]) -> String {
    failed
        .iter()
        .take(3)
        .map(|o| o.report(60))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn seeds_hold_every_promise() {
    let seeds = env_u64("S3E_SIM_SEEDS").unwrap_or(2_000);
    let first = env_u64("S3E_SIM_FIRST").unwrap_or(0);
    let (failed, simulated) = run_many(first, seeds, threads(), Opts::default());
    eprintln!(
        "simulation: {seeds} seeds from {first}, {:.1} simulated hours, {} failed",
        simulated.as_secs_f64() / 3600.0,
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds broke a promise: {:?}\n{}",
        failed.len(),
        failed.iter().map(|o| o.seed).collect::<Vec<_>>(),
        reports(&failed)
    );
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for seed in [1, 7, 1234] {
        let a = run(seed, Opts::default());
        let b = run(seed, Opts::default());
        assert!(a.trace.len() > 50, "the trace says what happened");
        assert_eq!(a.trace, b.trace, "seed {seed} replays exactly");
    }
}

#[test]
fn every_seed_simulates_at_least_fifty_leases() {
    let o = run(3, Opts::default());
    assert!(
        o.simulated >= o.drawn.lease * 50,
        "{:?} < 50 × {:?}",
        o.simulated,
        o.drawn.lease
    );
}

/// A negative control: the checker must fire when clocks drift beyond the
/// bound docs/concepts.md promises.
#[test]
fn clocks_drifting_beyond_the_bound_are_caught() {
    let opts = Opts {
        drift: 1.25,
        ..Opts::default()
    };
    let o = first_caught(opts, 600, |v| v.contains("two leaders"));
    assert!(
        o.is_some(),
        "clock rates at 1.25 × the bound never gave two leaders in 600 seeds"
    );
}

/// A negative control: the lost-answer defect, put back, is found.
#[test]
fn the_lost_answer_defect_is_caught() {
    let opts = Opts {
        defect: Some(Defect::LostAnswer),
        ..Opts::default()
    };
    let o = first_caught(opts, 600, |v| v.contains("two leaders"));
    let o = o.expect("the lost-answer defect gave no two leaders in 600 seeds");
    eprintln!("the lost-answer defect, caught:\n{}", o.report(12));
}

/// A negative control: a takeover after half a lease is found, by rule 2's
/// check and as two leaders; so is a create half a lease after the read
/// that confirmed the key absent (rule 2's check of creates).
#[test]
fn a_takeover_after_half_a_lease_is_caught() {
    let opts = Opts {
        defect: Some(Defect::HalfLease),
        ..Opts::default()
    };
    assert!(
        first_caught(opts, 100, |v| v.contains("(rule 2)")).is_some(),
        "rule 2's check never fired"
    );
    assert!(
        first_caught(opts, 100, |v| v.contains("two leaders")).is_some(),
        "no two leaders"
    );
    assert!(
        first_caught(opts, 600, |v| v.contains("created the lease key")).is_some(),
        "rule 2's check of creates never fired"
    );
}

/// The seeds the simulation found violations with before the fixes; each
/// stays a regression case (docs/testing.md).
const REGRESSIONS: &[u64] = &[
    // The lost-answer acquisition (two leaders; the first of 49 in 2,000).
    49, 73, 97,
    // A watch of an absent key that missed a record created, renewed and
    // deleted while its reads failed (two leaders).
    728, 1495,
    // The simulation's own operator breaking a documented limit (the
    // floor deleted with the lease unusable, or rebuilt lower than a
    // term in use, then the lease deleted): terms went back.
    717, 953, 1280, 1394,
    // From the first 100,000: the operator deleting the floor, then the
    // lease (91759); request timeouts below the store's own latency
    // (42139, 47897, 74054, 74955: no request could succeed).
    91759, 42139, 47897, 74054, 74955,
    // From 30,000 at 698b183: a floor read lost when the key was first seen
    // absent was retried only at the write, and the watch started again
    // (no leader for 41 s after the calm, bound 38.5 s).
    4098,
];

#[test]
fn regression_seeds_hold() {
    for &seed in REGRESSIONS {
        let o = run(seed, Opts::default());
        assert!(o.violations.is_empty(), "{}", o.report(80));
    }
}

/// `scripts/sim`: many seeds in the release-like `sim` profile, or one
/// seed replayed with its whole trace.
#[test]
#[ignore = "run by scripts/sim"]
#[allow(clippy::disallowed_types)] // the wall-clock time the run took, for the record
fn explore() {
    if let Some(seed) = env_u64("S3E_SIM_SEED") {
        let verbose = env_u64("S3E_SIM_VERBOSE").is_some_and(|v| v != 0);
        let o = run(
            seed,
            Opts {
                verbose,
                ..Opts::default()
            },
        );
        println!("{}", o.trace.join("\n"));
        println!("{}", o.report(0));
        assert!(o.violations.is_empty(), "seed {seed} broke a promise");
        return;
    }
    let seeds = env_u64("S3E_SIM_SEEDS").unwrap_or(100_000);
    let first = env_u64("S3E_SIM_FIRST").unwrap_or(0);
    let t = std::time::Instant::now();
    let (failed, simulated) = run_many(first, seeds, threads(), Opts::default());
    println!(
        "simulation: seeds {first}..{} ({seeds}), {:.1} simulated hours, {:.1}s, {} failed",
        first + seeds,
        simulated.as_secs_f64() / 3600.0,
        t.elapsed().as_secs_f64(),
        failed.len()
    );
    for o in &failed {
        println!("{}", o.report(40));
    }
    assert!(
        failed.is_empty(),
        "failing seeds: {:?}",
        failed.iter().map(|o| o.seed).collect::<Vec<_>>()
    );
}
