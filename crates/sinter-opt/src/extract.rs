//! DAG-aware extraction: one e-node per class reachable from the outputs, minimising the total cost
//! of the graph with **every class counted once**, however many parents share it.
//!
//! Tree-cost extraction (egg's `Extractor`) adds a child's cost once per parent. A conv read by both
//! a max-pool and a relu then looks cheaper as `conv_pool` + `conv` than as `max_pool` + `conv`,
//! because the tree cost of `max_pool(conv)` counts the conv again. Exact DAG extraction is an ILP
//! (egg's `LpExtractor` needs the CBC solver, which this project does not ship); sinter does it in
//! two steps instead:
//! 1. **tree costs** bottom-up to a fixed point, which gives every class a cheapest node whose
//!    children are all extractable (and so no cycles);
//! 2. **local improvement under the true DAG cost**, evaluating every candidate by the DAG cost of the
//!    whole selection (a walk from the roots, each class once, rejecting cycles) and keeping it when
//!    it is cheaper:
//!    - single switches: one class to another of its nodes;
//!    - sharing moves: every reachable class that has a node reading some class `c` switches to it
//!      at once. A conv read by a max pool and a relu extracts first as `conv_pool` + `fused_conv`
//!      (the conv twice); moving either reader alone to the shared conv costs more, both together
//!      less, and only this move finds it (`tests/opt/conv/shared_heavy_conv_*`).
//!
//!    Passes repeat until nothing improves.
//!
//! The order of classes and nodes is deterministic (by class id, then node order), so the same
//! e-graph always extracts the same graph.

use crate::analysis::Egraph;
use crate::cost::node_cost;
use crate::lang::ENode;
use crate::OptError;
use egg::{Id, Language};
use std::collections::HashMap;

/// The chosen node of every class reachable from the roots, and the DAG cost of the selection.
#[derive(Debug, Clone)]
pub struct Extraction {
    pub choice: HashMap<Id, ENode>,
    pub cost: f64,
}

/// The improvement passes stop after this many, even if a pass still improved.
const MAX_PASSES: usize = 4;

struct Costs {
    classes: Vec<Id>,
    index: HashMap<Id, usize>,
    /// Per class, the canonical nodes and each node's own cost.
    nodes: Vec<Vec<(ENode, f64)>>,
}

impl Costs {
    fn new(egraph: &Egraph) -> Costs {
        let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        classes.sort();
        let index = classes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let nodes = classes
            .iter()
            .map(|&id| {
                let class = &egraph[id];
                class
                    .nodes
                    .iter()
                    .map(|n| {
                        let n = n.clone().map_children(|c| egraph.find(c));
                        let cost = node_cost(egraph, &class.data, &n);
                        (n, cost)
                    })
                    .collect()
            })
            .collect();
        Costs {
            classes,
            index,
            nodes,
        }
    }
}

/// Cheapest tree cost of every class: (cost, node index), `None` where nothing is extractable.
fn tree_costs(costs: &Costs) -> Vec<Option<(f64, usize)>> {
    let mut best: Vec<Option<(f64, usize)>> = vec![None; costs.classes.len()];
    loop {
        let mut changed = false;
        for (class_idx, nodes) in costs.nodes.iter().enumerate() {
            for (node_idx, (node, own)) in nodes.iter().enumerate() {
                let mut total = *own;
                let mut ok = true;
                for child in node.children() {
                    match best[costs.index[child]] {
                        Some((c, _)) => total += c,
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                let better = match best[class_idx] {
                    None => true,
                    Some((c, _)) => total < c - 1e-12 * c.abs().max(1.0),
                };
                if better {
                    best[class_idx] = Some((total, node_idx));
                    changed = true;
                }
            }
        }
        if !changed {
            return best;
        }
    }
}

/// The DAG cost of `selection` (node index per class) from `roots`, or `None` if it has a cycle.
/// Also returns the reachable classes in post-order.
fn dag_cost(costs: &Costs, selection: &[usize], roots: &[usize]) -> Option<(f64, Vec<usize>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; costs.classes.len()];
    let mut order = Vec::new();
    let mut total = 0.0;
    for &root in roots {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Open;
        while let Some(&(class_idx, next)) = stack.last() {
            let (node, own) = &costs.nodes[class_idx][selection[class_idx]];
            if let Some(child) = node.children().get(next) {
                stack.last_mut().expect("non-empty").1 += 1;
                let child_idx = costs.index[child];
                match mark[child_idx] {
                    Mark::Done => {}
                    Mark::Open => return None,
                    Mark::New => {
                        mark[child_idx] = Mark::Open;
                        stack.push((child_idx, 0));
                    }
                }
            } else {
                total += own;
                mark[class_idx] = Mark::Done;
                order.push(class_idx);
                stack.pop();
            }
        }
    }
    Some((total, order))
}

/// The DAG cost of choosing every class's first node: before saturation, when each class has one
/// node, the cost of the input graph.
pub fn first_nodes_cost(egraph: &Egraph, roots: &[Id]) -> f64 {
    let costs = Costs::new(egraph);
    let roots: Vec<usize> = roots
        .iter()
        .map(|r| costs.index[&egraph.find(*r)])
        .collect();
    let selection = vec![0; costs.classes.len()];
    dag_cost(&costs, &selection, &roots).map_or(f64::INFINITY, |(cost, _)| cost)
}

/// Extracts the cheapest graph computing `roots`.
pub fn extract(egraph: &Egraph, roots: &[Id]) -> Result<Extraction, OptError> {
    let costs = Costs::new(egraph);
    let best = tree_costs(&costs);
    let root_idx: Vec<usize> = roots
        .iter()
        .map(|r| costs.index[&egraph.find(*r)])
        .collect();
    for (&root, &idx) in roots.iter().zip(&root_idx) {
        if best[idx].is_none() {
            return Err(OptError::Malformed(format!(
                "output class {root} has no extractable node"
            )));
        }
    }
    // Classes with no extractable node are never chosen (no extractable node reads them), so any
    // index will do for them.
    let mut selection: Vec<usize> = best.iter().map(|b| b.map_or(0, |(_, n)| n)).collect();
    let (mut cost, _) = dag_cost(&costs, &selection, &root_idx)
        .ok_or_else(|| OptError::Malformed("the tree-cost selection has a cycle".to_string()))?;
    let extractable = |class_idx: usize, node_idx: usize| {
        costs.nodes[class_idx][node_idx]
            .0
            .children()
            .iter()
            .all(|c| best[costs.index[c]].is_some())
    };
    let better = |new: f64, old: f64| new < old - 1e-9 * old.abs().max(1.0);
    for _ in 0..MAX_PASSES {
        let mut improved = false;
        // Single switches: one class to another of its nodes.
        let (_, reachable) = dag_cost(&costs, &selection, &root_idx).expect("acyclic");
        for &class_idx in &reachable {
            for node_idx in 0..costs.nodes[class_idx].len() {
                if node_idx == selection[class_idx] || !extractable(class_idx, node_idx) {
                    continue;
                }
                let previous = selection[class_idx];
                selection[class_idx] = node_idx;
                match dag_cost(&costs, &selection, &root_idx) {
                    Some((c, _)) if better(c, cost) => {
                        cost = c;
                        improved = true;
                    }
                    _ => selection[class_idx] = previous,
                }
            }
        }
        // Sharing moves: every reachable class that could read class `shared` (and does not yet)
        // switches to its cheapest node reading it, at once. Two fused ops that each recompute a
        // conv are a local optimum for single switches (moving either alone to the shared conv pays
        // for the conv without freeing the other), which this move escapes.
        let (_, reachable) = dag_cost(&costs, &selection, &root_idx).expect("acyclic");
        let mut readers: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for &class_idx in &reachable {
            let current = &costs.nodes[class_idx][selection[class_idx]].0;
            let mut cheapest: HashMap<usize, (f64, usize)> = HashMap::new();
            for (node_idx, (node, own)) in costs.nodes[class_idx].iter().enumerate() {
                if node_idx == selection[class_idx] || !extractable(class_idx, node_idx) {
                    continue;
                }
                for child in node.children() {
                    let child_idx = costs.index[child];
                    if current.children().contains(child) {
                        continue;
                    }
                    let entry = cheapest.entry(child_idx).or_insert((*own, node_idx));
                    if *own < entry.0 {
                        *entry = (*own, node_idx);
                    }
                }
            }
            for (child_idx, (_, node_idx)) in cheapest {
                readers
                    .entry(child_idx)
                    .or_default()
                    .push((class_idx, node_idx));
            }
        }
        let mut shared_classes: Vec<usize> = readers
            .iter()
            .filter(|(_, users)| users.len() >= 2)
            .map(|(shared, _)| *shared)
            .collect();
        shared_classes.sort_unstable();
        for shared in shared_classes {
            let previous: Vec<(usize, usize)> = readers[&shared]
                .iter()
                .map(|&(class_idx, _)| (class_idx, selection[class_idx]))
                .collect();
            for &(class_idx, node_idx) in &readers[&shared] {
                selection[class_idx] = node_idx;
            }
            match dag_cost(&costs, &selection, &root_idx) {
                Some((c, _)) if better(c, cost) => {
                    cost = c;
                    improved = true;
                }
                _ => {
                    for (class_idx, node_idx) in previous {
                        selection[class_idx] = node_idx;
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
    let (cost, reachable) = dag_cost(&costs, &selection, &root_idx).expect("acyclic");
    let choice = reachable
        .into_iter()
        .map(|idx| {
            (
                costs.classes[idx],
                costs.nodes[idx][selection[idx]].0.clone(),
            )
        })
        .collect();
    Ok(Extraction { choice, cost })
}
