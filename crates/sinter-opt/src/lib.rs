//! sinter's graph optimizer: equality saturation over the whole graph with egg, then extraction of the
//! cheapest equivalent graph under a cost model.
//!
//! Greedy graph passes (tract's, onnxruntime's) rewrite in a fixed order, and an early rewrite can
//! hide a better later one. Here the graph goes into an e-graph ([`convert`]), every rule adds
//! equivalent forms without removing any ([`rules`], in phases: canonicalise, recognise, fuse), and
//! [`extract`] picks one node per class minimising the [`cost`] of the kernels the graph would run,
//! counting shared subgraphs once. Weight-only subgraphs the rules introduced (folded batch norms,
//! transposed weights) are then evaluated once ([`fold`]).
//!
//! ```
//! use sinter_ir::{parse_graph, ParseOptions};
//! let graph = parse_graph(
//!     "graph g {
//!        input %x: f32[2,8]
//!        %0: f32[2,8] = exp(%x)
//!        %1: f32[2,1] = reduce_sum(%0) {axes=[-1]}
//!        %2: f32[2,8] = div(%0, %1)
//!        output y = %2
//!      }",
//!     &ParseOptions::default(),
//! )
//! .unwrap();
//! let optimized = sinter_opt::optimize(graph, &sinter_opt::OptimizeOptions::default()).unwrap();
//! assert!(optimized.graph.to_string().contains("softmax(%x)"));
//! assert_eq!(optimized.report.rule_counts["softmax-exp-sum"], 1);
//! ```
//!
//! **Invariant: the optimized graph computes what the input graph computes.** Every rule is checked by
//! a snapshot case that runs both graphs through the reference interpreter (`tests/opt/`), and the
//! conformance suites run with the optimizer on.

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod fold;
pub mod lang;
pub mod rules;

use analysis::Egraph;
use egg::{Id, Runner, SimpleScheduler, StopReason};
use lang::ENode;
use rules::Phase;
use sinter_ir::Graph;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Why the optimizer could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptError {
    #[error("the graph has a cycle through {node}")]
    Cycle { node: String },
    #[error("the graph is malformed: {0}")]
    Malformed(String),
    #[error("folding the weight-only {node}: {message}")]
    Fold { node: String, message: String },
}

/// Limits and switches of one optimizer run.
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// Saturation stops (for the phase) when the e-graph has more nodes than this.
    pub node_limit: usize,
    /// Saturation stops (for the phase) after this many iterations.
    pub iter_limit: usize,
    /// Saturation stops (for the phase) after this long. `None` has no time limit, which keeps runs
    /// deterministic (the snapshot tests use it).
    pub time_limit: Option<Duration>,
}

impl Default for OptimizeOptions {
    /// Generous limits; `SINTER_OPT_NODE_LIMIT` and `SINTER_OPT_ITER_LIMIT` override them (as egg's
    /// test runner does), so a test can be rerun with other limits without a rebuild.
    fn default() -> OptimizeOptions {
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        OptimizeOptions {
            node_limit: env("SINTER_OPT_NODE_LIMIT", 200_000),
            iter_limit: env("SINTER_OPT_ITER_LIMIT", 30),
            time_limit: Some(Duration::from_secs(10)),
        }
    }
}

/// How one phase's saturation went.
#[derive(Clone, Debug)]
pub struct PhaseReport {
    pub phase: &'static str,
    pub iterations: usize,
    /// `saturated`, or the limit that stopped it.
    pub stop_reason: String,
    pub hit_node_limit: bool,
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    /// Time spent searching for matches, applying rules and rebuilding the e-graph.
    pub search_time: Duration,
    pub apply_time: Duration,
    pub rebuild_time: Duration,
}

/// Why one node of the optimized graph is there: the rule that built it and where it matched.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The op of the node in the optimized graph.
    pub op: String,
    /// The node's label in the optimized graph (the source node it replaces).
    pub label: String,
    /// The rule that built the node.
    pub rule: String,
    /// Every rule that matched at the node's class, in the order they fired (the recognitions and
    /// fusions that led to the node: `gelu-tanh-...`, then `fused-matmul-gelu`).
    pub rewrites: Vec<String>,
}

/// What an optimizer run did.
#[derive(Clone, Debug, Default)]
pub struct OptimizeReport {
    pub phases: Vec<PhaseReport>,
    /// How often each rule fired (added something new), over all phases.
    pub rule_counts: BTreeMap<String, usize>,
    /// One entry per node of the optimized graph that a rule built.
    pub explanations: Vec<Explanation>,
    /// Type conflicts found in merges; a non-empty list is a bug in a rule.
    pub conflicts: Vec<String>,
    /// Building the e-graph from the graph (type inference and analysis of every node).
    pub conversion_time: Duration,
    pub saturation_time: Duration,
    pub extraction_time: Duration,
    pub fold_time: Duration,
    /// Weight-only nodes evaluated after extraction.
    pub n_folded: usize,
    /// The extracted graph's estimated cost, and the input graph's, in the cost model's nanoseconds.
    pub cost_before: f64,
    pub cost_after: f64,
}

impl OptimizeReport {
    /// Whether some phase stopped at the node limit (the result is valid but may miss rewrites).
    pub fn hit_node_limit(&self) -> bool {
        self.phases.iter().any(|p| p.hit_node_limit)
    }
}

/// The result of [`optimize`].
#[derive(Clone, Debug)]
pub struct Optimized {
    pub graph: Graph,
    pub report: OptimizeReport,
}

fn stop_reason_text(reason: &Option<StopReason>) -> (String, bool) {
    match reason {
        Some(StopReason::Saturated) => ("saturated".into(), false),
        Some(StopReason::IterationLimit(n)) => (format!("iteration limit ({n})"), false),
        Some(StopReason::NodeLimit(n)) => (format!("node limit ({n} nodes)"), true),
        Some(StopReason::TimeLimit(s)) => (format!("time limit ({s:.3} s)"), false),
        Some(StopReason::Other(s)) => (s.clone(), false),
        None => ("not run".into(), false),
    }
}

/// Optimizes `graph`: saturates with every rule, extracts the cheapest equivalent graph, and folds
/// weight-only subgraphs. The graph is taken by value so that its weights move through the
/// optimizer without being copied.
pub fn optimize(graph: Graph, options: &OptimizeOptions) -> Result<Optimized, OptError> {
    let started = Instant::now();
    let mut problem = convert::to_egraph(graph)?;
    let conversion_time = started.elapsed();
    let roots: Vec<Id> = problem.roots.iter().map(|(_, id)| *id).collect();
    let mut report = OptimizeReport {
        cost_before: extract::first_nodes_cost(&problem.egraph, &roots),
        ..OptimizeReport::default()
    };
    for phase in Phase::ALL {
        let egraph = std::mem::take(&mut problem.egraph);
        let mut runner = Runner::default()
            .with_egraph(egraph)
            .with_node_limit(options.node_limit)
            .with_iter_limit(options.iter_limit)
            .with_scheduler(SimpleScheduler);
        runner = match options.time_limit {
            Some(limit) => runner.with_time_limit(limit),
            None => runner.with_time_limit(Duration::from_secs(u64::MAX / 4)),
        };
        let runner = runner.run(phase.rules());
        for iteration in &runner.iterations {
            for (rule, count) in &iteration.applied {
                *report.rule_counts.entry(rule.to_string()).or_default() += count;
            }
        }
        let (stop_reason, hit_node_limit) = stop_reason_text(&runner.stop_reason);
        report.phases.push(PhaseReport {
            phase: phase.name(),
            iterations: runner.iterations.len(),
            stop_reason,
            hit_node_limit,
            egraph_nodes: runner.egraph.total_number_of_nodes(),
            egraph_classes: runner.egraph.number_of_classes(),
            search_time: runner
                .iterations
                .iter()
                .map(|i| Duration::from_secs_f64(i.search_time))
                .sum(),
            apply_time: runner
                .iterations
                .iter()
                .map(|i| Duration::from_secs_f64(i.apply_time))
                .sum(),
            rebuild_time: runner
                .iterations
                .iter()
                .map(|i| Duration::from_secs_f64(i.rebuild_time))
                .sum(),
        });
        problem.egraph = runner.egraph;
    }
    report.saturation_time = started.elapsed() - conversion_time;
    report.conversion_time = conversion_time;

    let started = Instant::now();
    let extraction = extract::extract(&problem.egraph, &roots)?;
    report.cost_after = extraction.cost;
    report.explanations = explain(&problem.egraph, &extraction.choice);
    report.conflicts = problem.egraph.analysis.conflicts.clone();
    let mut optimized = convert::to_graph(problem, &extraction.choice)?;
    report.extraction_time = started.elapsed();

    let started = Instant::now();
    report.n_folded = fold::fold_weight_only(&mut optimized)?;
    report.fold_time = started.elapsed();
    Ok(Optimized {
        graph: optimized,
        report,
    })
}

/// The rule behind every extracted op node that a rule built, in class order.
fn explain(egraph: &Egraph, choice: &std::collections::HashMap<Id, ENode>) -> Vec<Explanation> {
    let mut built_by: std::collections::HashMap<ENode, &str> = std::collections::HashMap::new();
    let mut rewrites: std::collections::HashMap<Id, Vec<String>> = std::collections::HashMap::new();
    for record in &egraph.analysis.provenance {
        let node = record.node.clone();
        let node = egg::Language::map_children(node, |c| egraph.find(c));
        built_by.entry(node).or_insert(record.rule.as_str());
        let at = rewrites.entry(egraph.find(record.matched)).or_default();
        if !at.contains(&record.rule) {
            at.push(record.rule.clone());
        }
    }
    let mut classes: Vec<&Id> = choice.keys().collect();
    classes.sort();
    classes
        .into_iter()
        .filter_map(|class| {
            let node = &choice[class];
            let name = node.op_name()?;
            let rule = built_by.get(node)?;
            let label = egraph[*class]
                .data
                .origin
                .as_deref()
                .unwrap_or("")
                .to_string();
            Some(Explanation {
                op: name.to_string(),
                label,
                rule: rule.to_string(),
                rewrites: rewrites.get(class).cloned().unwrap_or_default(),
            })
        })
        .collect()
}
