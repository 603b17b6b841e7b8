//! Medians timed beside criterion, for the ratio tables the `jit` bench prints.
//!
//! Criterion reports each benchmark on its own and does not hand its estimates back to the caller,
//! so a figure like "sinter / tract" cannot be read from it in the same process. Reading its
//! `estimates.json` from the target directory would tie the tables to criterion's file layout and to
//! where the target directory is. Instead the tables time their own medians here, **interleaved**:
//! each round gives every contender its turn, so a burst of load from another process on a shared
//! machine slows all of them alike instead of one of them, and the ratio stays meaningful.
//!
//! **A turn is two runs back to back, and only the second is timed.** The other contenders' runs
//! evict a model's weights and buffers from the caches; timing the first run after them measured
//! tract's ResNet-18 (w8) 20-40% slower than criterion's back-to-back samples did. The untimed run
//! brings them back, so the tables report the same hot-cache latency as criterion.
//!
//! The tables follow criterion's command line: they time only when criterion measures (`--bench`,
//! which `cargo bench` passes; under `cargo test --bench` every contender runs once, like criterion's
//! test mode) and only the cases its filter selects. The filter is matched as a plain substring, so a
//! regular expression that is not a plain name selects the criterion benchmarks but not the tables.

use std::time::{Duration, Instant};

/// Criterion's options that take a value, so that the value is not mistaken for the filter.
const VALUE_OPTIONS: [&str; 19] = [
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "-c",
    "--color",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--plotting-backend",
    "--output-format",
    "--format",
];

/// What the bench process was asked to do, as far as the tables are concerned.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    /// Whether criterion measures (`--bench` without `--test`, and not `--list`).
    pub timed: bool,
    /// Criterion's filter argument, if any.
    pub filter: Option<String>,
}

impl BenchArgs {
    /// Reads the process's arguments.
    pub fn from_env() -> BenchArgs {
        BenchArgs::parse(std::env::args().skip(1))
    }

    /// Reads criterion's arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> BenchArgs {
        let mut bench = false;
        let mut test_or_list = false;
        let mut filter = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => bench = true,
                "--test" | "--list" => test_or_list = true,
                option if VALUE_OPTIONS.contains(&option) => {
                    args.next();
                }
                option if option.starts_with('-') => {}
                name => {
                    if filter.is_none() {
                        filter = Some(name.to_string());
                    }
                }
            }
        }
        BenchArgs {
            timed: bench && !test_or_list,
            filter,
        }
    }

    /// Whether criterion's filter selects any of `ids` (every id when there is no filter).
    pub fn selects_any(&self, ids: &[String]) -> bool {
        match &self.filter {
            None => true,
            Some(filter) => ids.iter().any(|id| id.contains(filter.as_str())),
        }
    }
}

/// How long the interleaved rounds of one table row run.
#[derive(Clone, Copy, Debug)]
pub struct RoundBudget {
    /// Rounds run at least this long in all...
    pub min_time: Duration,
    /// ...and at least this many rounds...
    pub min_rounds: usize,
    /// ...but never more than this many.
    pub max_rounds: usize,
}

/// Gives every contender a turn per round, in order (a warm-up run, then a timed run), and returns
/// each one's median duration. One round of single runs comes first (it warms lazily built state).
/// When `timed` is false (a test run) only that round runs and its durations are returned.
pub fn interleaved_medians(
    contenders: &mut [&mut dyn FnMut()],
    budget: RoundBudget,
    timed: bool,
) -> Vec<Duration> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for (contender, samples) in contenders.iter_mut().zip(&mut samples) {
        let start = Instant::now();
        contender();
        samples.push(start.elapsed());
    }
    if !timed {
        return samples.into_iter().flatten().collect();
    }
    for samples in &mut samples {
        samples.clear();
    }
    let start = Instant::now();
    let mut n_rounds = 0;
    while n_rounds < budget.max_rounds
        && (n_rounds < budget.min_rounds || start.elapsed() < budget.min_time)
    {
        for (contender, samples) in contenders.iter_mut().zip(&mut samples) {
            contender();
            let run_start = Instant::now();
            contender();
            samples.push(run_start.elapsed());
        }
        n_rounds += 1;
    }
    samples.into_iter().map(median).collect()
}

/// The median of a non-empty list (the mean of the two middle values for an even length).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2
    }
}

/// A duration in milliseconds with three decimals, for the tables.
pub fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1e3)
}

/// Checks of the argument parsing and the median, run by `cargo test --bench jit` before the
/// benchmarks (a bench target has no `#[test]` harness).
pub fn self_check() -> Result<(), String> {
    let args = |list: &[&str]| BenchArgs::parse(list.iter().map(|arg| arg.to_string()));
    let cases = [
        (args(&["--bench"]), true, None),
        (args(&[]), false, None),
        (args(&["--bench", "--test"]), false, None),
        (args(&["--bench", "--list"]), false, None),
        (
            args(&["--bench", "--sample-size", "10", "models/tract"]),
            true,
            Some("models/tract"),
        ),
        (
            args(&["--quick", "--bench", "resnet"]),
            true,
            Some("resnet"),
        ),
    ];
    for (idx, (parsed, timed, filter)) in cases.iter().enumerate() {
        if parsed.timed != *timed || parsed.filter.as_deref() != *filter {
            return Err(format!("argument case {idx} parsed as {parsed:?}"));
        }
    }
    let filtered = args(&["--bench", "resnet"]);
    if !filtered.selects_any(&["models/tract/resnet18_w8_ts".to_string()])
        || filtered.selects_any(&["models/tract/lenet5_ts".to_string()])
    {
        return Err("the filter does not select by substring".to_string());
    }
    let ms = Duration::from_millis;
    if median(vec![ms(3), ms(1), ms(2)]) != ms(2)
        || median(vec![ms(4), ms(1), ms(2), ms(3)]) != ms(2) + Duration::from_micros(500)
    {
        return Err("median is wrong".to_string());
    }
    Ok(())
}
