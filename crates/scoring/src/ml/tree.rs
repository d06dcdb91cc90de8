//! TreeEnsembleRegressor and TreeEnsembleClassifier (ai.onnx.ml 1 and 3).
//!
//! Thresholds, weights and sums are `f32` unless the input is `f64`, and trees are summed in the
//! order of their first-listed node, as onnxruntime does; so are its binary-classifier rules
//! (one score for the second class, `[1-s, s]` or `[-s, s]` columns, the 0.5 or 0 threshold).

use std::collections::{BTreeSet, HashMap};

use crate::pb::NodeProto;
use tract_data::internal::*;

use super::{
    Built, Context, Kernel, Labels, Plain, PostTransform, kernel, one_of, rows_and_columns,
};

/// How a branch node compares a feature with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// How the trees' leaf weights are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Clone, Debug)]
struct Node {
    feature: usize,
    threshold: f64,
    mode: Mode,
    true_child: usize,
    false_child: usize,
    missing_true: bool,
    /// (target or class, weight), in onnxruntime's order.
    weights: Vec<(usize, f64)>,
}

/// A node as the walk reads it, 16 bytes, so that a tree's nodes share cache lines; its
/// threshold is in [`Forest::thresholds`]. A leaf is its own child both ways.
#[derive(Clone, Copy, Debug)]
struct Split {
    feature: u32,
    /// The false child, then the true child.
    children: [u32; 2],
    mode: Mode,
    missing_true: bool,
}

impl Split {
    /// The node a row goes to from this one, whose threshold is `t`. `LEQ`: every branch of
    /// the forest is `BRANCH_LEQ` (as scikit-learn's are), so the compare needs no dispatch;
    /// and a leaf goes to itself whatever the compare says. No branch on the data either way.
    fn next<T: Real, const LEQ: bool>(&self, t: T, row: &[T]) -> usize {
        let v = row[self.feature as usize];
        let cond = if LEQ {
            v <= t
        } else {
            match self.mode {
                Mode::Leq => v <= t,
                Mode::Lt => v < t,
                Mode::Gte => v >= t,
                Mode::Gt => v > t,
                Mode::Eq => v == t,
                Mode::Neq => v != t,
                Mode::Leaf => true,
            }
        };
        let cond = cond | (self.missing_true & v.is_nan());
        self.children[usize::from(cond)] as usize
    }
}

/// The trees of an ensemble, flattened into one arena.
#[derive(Clone, Debug)]
struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
    max_feature: usize,
    /// The nodes again, as the walk reads them.
    splits: Vec<Split>,
    /// Their thresholds, in both precisions.
    thresholds: (Vec<f32>, Vec<f64>),
    /// Each tree's depth: the most branches from its root to a leaf.
    depths: Vec<usize>,
    /// Every branch is `BRANCH_LEQ`.
    leq_only: bool,
}

/// A number the ensemble computes in: `f32`, or `f64` for `f64` inputs.
trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    fn of(v: f64) -> Self;
    fn is_nan(self) -> bool;
    fn to_f32(self) -> f32;
    /// The forest's thresholds in this precision.
    fn thresholds(forest: &Forest) -> &[Self];
}

impl Real for f32 {
    #[expect(clippy::cast_possible_truncation, reason = "attributes are f32 values")]
    fn of(v: f64) -> Self {
        v as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn thresholds(forest: &Forest) -> &[Self] {
        &forest.thresholds.0
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "outputs are f32, as in onnxruntime"
    )]
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn thresholds(forest: &Forest) -> &[Self] {
        &forest.thresholds.1
    }
}

/// Rows walked down a tree together (see [`Forest::scores`]).
const LANES: usize = 8;

/// Adds one tree's leaf to a row's scores (`acc`, one per target).
fn accumulate<T: Real>(acc: &mut [Score<T>], leaf: &Node, agg: Aggregate) {
    if acc.len() == 1 {
        // onnxruntime's one-target path: the leaf's first weight, or its value.
        let w = T::of(leaf.weights.first().map_or(leaf.threshold, |&(_, w)| w));
        let a = &mut acc[0];
        match agg {
            Aggregate::Sum | Aggregate::Average => a.score = a.score + w,
            Aggregate::Min => {
                if !a.has || w < a.score {
                    a.score = w;
                }
                a.has = true;
            }
            Aggregate::Max => {
                if !a.has || w > a.score {
                    a.score = w;
                }
                a.has = true;
            }
        }
        return;
    }
    for &(t, w) in &leaf.weights {
        let w = T::of(w);
        let a = &mut acc[t];
        match agg {
            Aggregate::Sum | Aggregate::Average => a.score = a.score + w,
            Aggregate::Min => {
                if !a.has || w < a.score {
                    a.score = w;
                }
            }
            Aggregate::Max => {
                if !a.has || w > a.score {
                    a.score = w;
                }
            }
        }
        a.has = true;
    }
}

/// A running score: onnxruntime's `ScoreValue`.
#[derive(Clone, Copy, Debug)]
struct Score<T> {
    score: T,
    has: bool,
}

impl<T: Real> Score<T> {
    fn read(self) -> T {
        if self.has { self.score } else { T::of(0.0) }
    }
}

impl Forest {
    /// Reads and checks the `nodes_*` attributes and the leaf weights `<prefix>_*`.
    fn parse(node: &NodeProto, prefix: &str, targets: usize) -> TractResult<Forest> {
        let ids = |attr: &str| -> TractResult<Vec<i64>> { node.get_attr_vec(attr) };
        let tree_ids = ids("nodes_treeids")?;
        let node_ids = ids("nodes_nodeids")?;
        let features = ids("nodes_featureids")?;
        let trues = ids("nodes_truenodeids")?;
        let falses = ids("nodes_falsenodeids")?;
        let modes: Vec<String> = node.get_attr_vec("nodes_modes")?;
        let values = float_list(node, "nodes_values")?.unwrap_or_default();
        let missing: Vec<i64> = node
            .get_attr_opt_vec("nodes_missing_value_tracks_true")?
            .unwrap_or_default();
        let n = tree_ids.len();
        for (attr, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", values.len()),
        ] {
            if len != n {
                return node.bail_attr(
                    attr,
                    &format!("has {len} entries but nodes_treeids has {n}"),
                );
            }
        }
        if missing.len() > n {
            return node.bail_attr(
                "nodes_missing_value_tracks_true",
                &format!("has {} entries for {n} nodes", missing.len()),
            );
        }
        if n == 0 {
            return node.bail_attr("nodes_treeids", "no nodes");
        }

        let mut index = HashMap::with_capacity(n);
        let mut roots = Vec::new();
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
                return node.bail_attr(
                    "nodes_nodeids",
                    &format!(
                        "node {} of tree {} is listed twice",
                        node_ids[i], tree_ids[i]
                    ),
                );
            }
            if i == 0 || tree_ids[i] != tree_ids[i - 1] {
                roots.push(i);
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut max_feature = 0;
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => {
                    return node.bail_attr(
                        "nodes_modes",
                        &format!("unknown mode \"{other}\" at node {}", node_ids[i]),
                    );
                }
            };
            let child = |attr: &str, id: i64| -> TractResult<usize> {
                match index.get(&(tree_ids[i], id)) {
                    Some(&c) if c != i => Ok(c),
                    _ => node.bail_attr(
                        attr,
                        &format!(
                            "node {} of tree {} points to node {id}, which is not in that tree",
                            node_ids[i], tree_ids[i]
                        ),
                    ),
                }
            };
            let (true_child, false_child, feature) = if mode == Mode::Leaf {
                (i, i, 0)
            } else {
                let feature = usize::try_from(features[i]).or_else(|_| {
                    node.bail_attr("nodes_featureids", &format!("negative id {}", features[i]))
                })?;
                max_feature = max_feature.max(feature);
                (
                    child("nodes_truenodeids", trues[i])?,
                    child("nodes_falsenodeids", falses[i])?,
                    feature,
                )
            };
            nodes.push(Node {
                feature,
                threshold: values[i],
                mode,
                true_child,
                false_child,
                missing_true: missing.get(i).is_some_and(|&m| m != 0),
                weights: vec![],
            });
        }

        let w_trees = ids(&format!("{prefix}_treeids"))?;
        let w_nodes = ids(&format!("{prefix}_nodeids"))?;
        let w_ids = ids(&format!("{prefix}_ids"))?;
        let w_attr = format!("{prefix}_weights");
        let weights = float_list(node, &w_attr)?.unwrap_or_default();
        for (attr, len) in [
            (format!("{prefix}_nodeids"), w_nodes.len()),
            (format!("{prefix}_ids"), w_ids.len()),
            (w_attr.clone(), weights.len()),
        ] {
            if len != w_trees.len() {
                return node.bail_attr(
                    &attr,
                    &format!(
                        "has {len} entries but {prefix}_treeids has {}",
                        w_trees.len()
                    ),
                );
            }
        }
        let mut order: Vec<usize> = (0..w_trees.len()).collect();
        order.sort_by_key(|&k| (w_trees[k], w_nodes[k], k));
        for k in order {
            let Some(&at) = index.get(&(w_trees[k], w_nodes[k])) else {
                return node.bail_attr(
                    &format!("{prefix}_nodeids"),
                    &format!("no node {} in tree {}", w_nodes[k], w_trees[k]),
                );
            };
            let target = usize::try_from(w_ids[k]).ok().filter(|&t| t < targets);
            let Some(target) = target else {
                return node.bail_attr(
                    &format!("{prefix}_ids"),
                    &format!("{} is not in [0, {targets})", w_ids[k]),
                );
            };
            // onnxruntime ignores weights on branch nodes.
            if nodes[at].mode == Mode::Leaf {
                nodes[at].weights.push((target, weights[k]));
            }
        }
        let index = |i: usize| {
            u32::try_from(i).or_else(|_| node.bail_attr("nodes_treeids", "too many nodes"))
        };
        let splits = nodes
            .iter()
            .map(|n| {
                Ok(Split {
                    feature: index(n.feature)?,
                    children: [index(n.false_child)?, index(n.true_child)?],
                    mode: n.mode,
                    missing_true: n.missing_true,
                })
            })
            .collect::<TractResult<_>>()?;
        let thresholds = (
            nodes.iter().map(|n| f32::of(n.threshold)).collect(),
            nodes.iter().map(|n| n.threshold).collect(),
        );
        let mut forest = Forest {
            nodes,
            roots,
            max_feature,
            splits,
            thresholds,
            depths: Vec::new(),
            leq_only: false,
        };
        forest.leq_only = forest
            .nodes
            .iter()
            .all(|n| matches!(n.mode, Mode::Leq | Mode::Leaf));
        forest.check_acyclic(node)?;
        forest.depths = forest.depths();
        Ok(forest)
    }

    /// Each tree's depth; the trees are acyclic.
    fn depths(&self) -> Vec<usize> {
        let mut depth: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for &root in &self.roots {
            let mut stack = vec![root];
            while let Some(&i) = stack.last() {
                let n = &self.nodes[i];
                if n.mode == Mode::Leaf {
                    depth[i] = Some(0);
                    stack.pop();
                    continue;
                }
                match (depth[n.true_child], depth[n.false_child]) {
                    (Some(t), Some(f)) => {
                        depth[i] = Some(1 + t.max(f));
                        stack.pop();
                    }
                    (t, f) => {
                        stack.extend(t.is_none().then_some(n.true_child));
                        stack.extend(f.is_none().then_some(n.false_child));
                    }
                }
            }
        }
        self.roots.iter().map(|&r| depth[r].unwrap_or(0)).collect()
    }

    /// Refuses trees with a cycle, which would never reach a leaf.
    fn check_acyclic(&self, node: &NodeProto) -> TractResult<()> {
        // 0: unseen, 1: on the current path, 2: done.
        let mut state = vec![0u8; self.nodes.len()];
        for &root in &self.roots {
            let mut stack = vec![(root, false)];
            while let Some((i, leaving)) = stack.pop() {
                if leaving {
                    state[i] = 2;
                    continue;
                }
                match state[i] {
                    1 => return node.bail_attr("nodes_truenodeids", "the trees have a cycle"),
                    2 => continue,
                    _ => {}
                }
                state[i] = 1;
                stack.push((i, true));
                let n = &self.nodes[i];
                if n.mode != Mode::Leaf {
                    for c in [n.true_child, n.false_child] {
                        if state[c] == 1 {
                            return node.bail_attr("nodes_truenodeids", "the trees have a cycle");
                        }
                        stack.push((c, false));
                    }
                }
            }
        }
        Ok(())
    }

    /// The scores of `n` rows of `c` columns, `targets` per row in row order, before base
    /// values: every tree's leaf for each row, aggregated in tree order.
    ///
    /// The trees are walked tree by tree, each over the rows [`LANES`] at a time, one level per
    /// pass, as many passes as the tree is deep (a lane at a leaf stays there): the lanes'
    /// loads and compares are independent, so they overlap instead of each waiting on the
    /// last, no pass branches on the data, and a tree's nodes stay in cache across the rows.
    fn scores<T: Real>(
        &self,
        n: usize,
        c: usize,
        x: &[T],
        targets: usize,
        agg: Aggregate,
    ) -> Vec<Score<T>> {
        let zero = Score {
            score: T::of(0.0),
            has: false,
        };
        let mut acc = vec![zero; n * targets];
        if self.leq_only {
            self.walk::<T, true>(c, x, targets, agg, &mut acc);
        } else {
            self.walk::<T, false>(c, x, targets, agg, &mut acc);
        }
        acc
    }

    /// [`Forest::scores`] into `acc`, `targets` per row.
    fn walk<T: Real, const LEQ: bool>(
        &self,
        c: usize,
        x: &[T],
        targets: usize,
        agg: Aggregate,
        acc: &mut [Score<T>],
    ) {
        let n = acc.len().checked_div(targets).unwrap_or(0);
        let thresholds = T::thresholds(self);
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            for start in (0..n).step_by(LANES) {
                let lanes = (n - start).min(LANES);
                let mut at = [root; LANES];
                // A tree with a branch reads a column, so `c` is at least 1 (check_columns).
                for _ in 0..depth {
                    for (k, at) in at[..lanes].iter_mut().enumerate() {
                        let row = &x[(start + k) * c..][..c];
                        *at = self.splits[*at].next::<T, LEQ>(thresholds[*at], row);
                    }
                }
                for (k, &leaf) in at[..lanes].iter().enumerate() {
                    let acc = &mut acc[(start + k) * targets..][..targets];
                    accumulate(acc, &self.nodes[leaf], agg);
                }
            }
        }
    }

    fn check_columns(&self, columns: usize) -> TractResult<()> {
        if self.max_feature >= columns {
            bail!(
                "the trees read feature {} but the input has {columns} columns",
                self.max_feature
            );
        }
        Ok(())
    }
}

/// A float list attribute, or its `<name>_as_tensor` double form.
fn float_list(node: &NodeProto, name: &str) -> TractResult<Option<Vec<f64>>> {
    let floats: Option<Vec<f32>> = node.get_attr_opt_vec(name)?;
    let tensor_attr = format!("{name}_as_tensor");
    let tensor = node.get_attr_tensor(&tensor_attr)?;
    match (floats, tensor) {
        (Some(_), Some(_)) => node.bail_attr(
            &tensor_attr,
            &format!("both {name} and {tensor_attr} are given"),
        ),
        (Some(f), None) => Ok(Some(f.into_iter().map(f64::from).collect())),
        (None, Some(t)) => {
            let t = t
                .cast_to::<f64>()
                .or_else(|e| node.bail_attr(&tensor_attr, &format!("{e:#}")))?;
            Ok(Some(t.plain::<f64>()?.to_vec()))
        }
        (None, None) => Ok(None),
    }
}

fn aggregate(node: &NodeProto) -> TractResult<Aggregate> {
    one_of(
        node,
        "aggregate_function",
        Some("SUM"),
        &[
            ("SUM", Aggregate::Sum),
            ("AVERAGE", Aggregate::Average),
            ("MIN", Aggregate::Min),
            ("MAX", Aggregate::Max),
        ],
    )
}

/// TreeEnsembleRegressor.
#[derive(Clone, Debug)]
struct Regressor {
    forest: Forest,
    targets: usize,
    aggregate: Aggregate,
    base: Vec<f64>,
    post: PostTransform,
}

pub(crate) fn tree_ensemble_regressor(_ctx: &Context, node: &NodeProto) -> Built {
    let targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    let targets = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .map_or_else(
            || node.bail_attr("n_targets", &format!("must be positive, got {targets}")),
            Ok,
        )?;
    let forest = Forest::parse(node, "target", targets)?;
    let base = float_list(node, "base_values")?.unwrap_or_default();
    if !base.is_empty() && base.len() != targets {
        return node.bail_attr(
            "base_values",
            &format!("has {} entries for {targets} targets", base.len()),
        );
    }
    Ok(kernel(Regressor {
        forest,
        targets,
        aggregate: aggregate(node)?,
        base,
        post: PostTransform::parse(node)?,
    }))
}

impl Regressor {
    fn run<T: Real>(&self, n: usize, c: usize, x: &[T]) -> TractResult<Vec<f32>> {
        self.forest.check_columns(c)?;
        let trees = T::of(self.forest.roots.len() as f64);
        let mut out = Vec::with_capacity(n * self.targets);
        let scores = self.forest.scores(n, c, x, self.targets, self.aggregate);
        for acc in scores.chunks(self.targets.max(1)) {
            if self.targets == 1 {
                let origin = T::of(self.base.first().copied().unwrap_or(0.0));
                let a = acc[0];
                let s = match self.aggregate {
                    Aggregate::Sum => a.score + origin,
                    Aggregate::Average => a.score / trees + origin,
                    Aggregate::Min | Aggregate::Max => {
                        if a.has {
                            a.score + origin
                        } else {
                            origin
                        }
                    }
                };
                out.push(self.post.apply_single(s.to_f32()));
                continue;
            }
            let mut row_out: Vec<f32> = acc
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let base = T::of(self.base.get(i).copied().unwrap_or(0.0));
                    let s = match self.aggregate {
                        Aggregate::Sum => a.score + base,
                        Aggregate::Average => a.score / trees + base,
                        Aggregate::Min | Aggregate::Max => base + a.read(),
                    };
                    // A target no tree reached reads 0, base value or not.
                    if a.has { s.to_f32() } else { 0.0 }
                })
                .collect();
            self.post.apply(&mut row_out);
            out.extend(row_out);
        }
        Ok(out)
    }
}

impl Kernel for Regressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &[DatumType::F32, DatumType::F64])?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let (n, _) = rows_and_columns(&inputs[0])?;
        Ok(tvec!(tvec!(n, self.targets.into())))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (n, c) = (rows(x), columns(x));
        let out = if x.datum_type() == DatumType::F64 {
            self.run(n, c, x.plain::<f64>()?)?
        } else {
            self.run(n, c, x.cast_to::<f32>()?.plain::<f32>()?)?
        };
        Ok(tvec!(Tensor::from_shape(&[n, self.targets], &out)?))
    }
}

/// TreeEnsembleClassifier.
#[derive(Clone, Debug)]
struct Classifier {
    forest: Forest,
    labels: Labels,
    base: Vec<f64>,
    post: PostTransform,
    binary_case: bool,
    all_positive: bool,
}

pub(crate) fn tree_ensemble_classifier(_ctx: &Context, node: &NodeProto) -> Built {
    let labels = Labels::parse(node, "classlabels_int64s")?;
    let classes = labels.len();
    if classes < 2 {
        return node.bail_attr(
            "classlabels_int64s",
            "a classifier needs at least two classes",
        );
    }
    let forest = Forest::parse(node, "class", classes)?;
    let base = float_list(node, "base_values")?.unwrap_or_default();
    let base_ok = if classes == 2 {
        base.len() <= 2
    } else {
        base.is_empty() || base.len() == classes
    };
    if !base_ok {
        return node.bail_attr(
            "base_values",
            &format!("has {} entries for {classes} classes", base.len()),
        );
    }
    let class_ids: BTreeSet<usize> = forest
        .nodes
        .iter()
        .flat_map(|n| n.weights.iter().map(|&(c, _)| c))
        .collect();
    let binary_case = classes == 2 && class_ids.len() == 1;
    let post = PostTransform::parse(node)?;
    if classes == 2 && post == PostTransform::Probit && !class_ids.contains(&1) {
        return node.bail_attr("post_transform", super::post::BINARY_PROBIT);
    }
    let all_positive = forest
        .nodes
        .iter()
        .all(|n| n.weights.iter().all(|&(_, w)| w >= 0.0));
    Ok(kernel(Classifier {
        forest,
        labels,
        base,
        post,
        binary_case,
        all_positive,
    }))
}

/// The chosen label of a row: a class index, or onnxruntime's raw 0/1 for two-class ensembles
/// that are not in its binary case.
#[derive(Clone, Copy)]
enum Choice {
    Index(usize),
    Raw(i64),
}

impl Classifier {
    fn run<T: Real>(&self, n: usize, c: usize, x: &[T]) -> TractResult<(Vec<Choice>, Vec<f32>)> {
        self.forest.check_columns(c)?;
        let classes = self.labels.len();
        let mut labels = Vec::with_capacity(n);
        let mut z = Vec::with_capacity(n * classes);
        let scores = self.forest.scores(n, c, x, classes, Aggregate::Sum);
        let mut acc = Vec::with_capacity(classes);
        for row in scores.chunks(classes.max(1)) {
            acc.clear();
            acc.extend_from_slice(row);
            if classes > 2 {
                for (a, &b) in acc.iter_mut().zip(&self.base) {
                    a.score = if a.has { a.score + T::of(b) } else { T::of(b) };
                    a.has = true;
                }
                let mut best: Option<(usize, T)> = None;
                for (i, a) in acc.iter().enumerate() {
                    if a.has && best.is_none_or(|(_, m)| a.score > m) {
                        best = Some((i, a.score));
                    }
                }
                let Some((best, _)) = best else {
                    bail!("no tree gave a score to any class");
                };
                labels.push(Choice::Index(best));
                let mut scores: Vec<f32> = acc.iter().map(|a| a.read().to_f32()).collect();
                self.post.apply(&mut scores);
                z.extend(scores);
                continue;
            }
            let (h0, h1) = (acc[0].has, acc[1].has);
            let mut wa: i32 = -1;
            let mut two_slots = true;
            match self.base.len() {
                2 => {
                    if h1 {
                        acc[1].score = T::of(self.base[1]) + acc[0].score;
                        acc[0].score = -acc[1].score;
                    } else {
                        acc[1].score = acc[1].score + T::of(self.base[1]);
                        acc[0].score = acc[0].score + T::of(self.base[0]);
                    }
                }
                1 => {
                    acc[0].score = acc[0].score + T::of(self.base[0]);
                    two_slots = h1;
                }
                _ => {
                    wa = 3;
                    two_slots = h1;
                }
            }
            let pos = if two_slots && h1 {
                acc[1].score
            } else if h0 {
                acc[0].score
            } else {
                T::of(0.0)
            };
            let label = if self.binary_case {
                if self.all_positive {
                    if pos > T::of(0.5) {
                        wa = 0;
                        Choice::Index(1)
                    } else {
                        wa = 1;
                        Choice::Index(0)
                    }
                } else if pos > T::of(0.0) {
                    wa = 2;
                    Choice::Index(1)
                } else {
                    wa = 3;
                    Choice::Index(0)
                }
            } else {
                Choice::Raw(i64::from(pos > T::of(0.0)))
            };
            labels.push(label);
            if two_slots {
                let mut scores = [acc[0].read().to_f32(), acc[1].read().to_f32()];
                self.post.apply(&mut scores);
                z.extend(scores);
                continue;
            }
            let s = acc[0].read().to_f32();
            let pair = match (wa, self.post) {
                (_, PostTransform::Probit) | (-1, _) => {
                    bail!("onnxruntime leaves this row's second score undefined")
                }
                (0 | 1, _) => [1.0 - s, s],
                (_, PostTransform::Logistic) => {
                    [super::post::logistic(-s), super::post::logistic(s)]
                }
                _ => [-s, s],
            };
            z.extend(pair);
        }
        Ok((labels, z))
    }

    fn label_tensor(&self, choices: &[Choice]) -> TractResult<Tensor> {
        match &self.labels {
            Labels::Ints(v) => Ok(tensor1(
                &choices
                    .iter()
                    .map(|c| match *c {
                        Choice::Index(i) => v[i],
                        Choice::Raw(r) => r,
                    })
                    .collect::<Vec<_>>(),
            )),
            Labels::Strings(_) => {
                let indices: Vec<usize> = choices
                    .iter()
                    .map(|c| match *c {
                        Choice::Index(i) => i,
                        Choice::Raw(r) => usize::from(r != 0),
                    })
                    .collect();
                self.labels.tensor(&indices)
            }
        }
    }
}

impl Kernel for Classifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn outputs(&self) -> usize {
        2
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &super::NUMERIC)?;
        Ok(tvec!(self.labels.datum_type(), f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let (n, _) = rows_and_columns(&inputs[0])?;
        Ok(tvec!(tvec!(n.clone()), tvec!(n, self.labels.len().into())))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (n, c) = (rows(x), columns(x));
        let (choices, z) = if x.datum_type() == DatumType::F64 {
            self.run(n, c, x.plain::<f64>()?)?
        } else {
            self.run(n, c, x.cast_to::<f32>()?.plain::<f32>()?)?
        };
        let z = Tensor::from_shape(&[n, self.labels.len()], &z)?;
        Ok(tvec!(self.label_tensor(&choices)?, z))
    }
}

/// Checks there is one input of an accepted type.
pub(crate) fn check_inputs(inputs: &[DatumType], accepted: &[DatumType]) -> TractResult<()> {
    match inputs {
        [dt] if accepted.contains(dt) => Ok(()),
        [dt] => bail!("input type {dt:?} is not supported; expected one of {accepted:?}"),
        _ => bail!("expected one input, got {}", inputs.len()),
    }
}

/// The number of rows of a rank 1 or 2 input.
pub(crate) fn rows(x: &Tensor) -> usize {
    if x.rank() == 1 { 1 } else { x.shape()[0] }
}

/// The number of columns of a rank 1 or 2 input.
pub(crate) fn columns(x: &Tensor) -> usize {
    x.shape().last().copied().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_operator;

    #[test]
    fn tree_ensemble_regressor_matches_onnxruntime() {
        assert!(check_operator("tree_ensemble_regressor_") >= 15);
    }

    #[test]
    fn tree_ensemble_classifier_matches_onnxruntime() {
        assert!(check_operator("tree_ensemble_classifier_") >= 15);
    }
}
