//! Presence by ancestry, as numbers.
//!
//! Each ingested branch keeps a chain of commits `M1, M2, …`, each an ancestor of the
//! next (its first-parent line, extended at every sync). A commit's *landing* is the
//! number of the first chain commit that contains it. Then "is C an ancestor of Mn?"
//! is `landing(C) <= n`: one comparison of two stored numbers, no walk. A commit off
//! the chain (an image built from a branch) is described by the last chain commit it
//! contains plus the few commits of its own it adds ([`SourcePoint`]).

use std::collections::{HashMap, HashSet};

/// One commit's landing on a branch: `(sha, position, on_chain)`.
pub type Landing = (String, i64, bool);

/// Numbers the commits of `graph` for a branch whose tip moved from `old` (already
/// numbered up to `start - 1`; `None` when numbering from scratch) to `new`.
///
/// `graph` is `git rev-list --reverse --topo-order --parents new [--not old]`: every
/// commit that `new` contains and `old` does not, parents before children, each with
/// its parents' shas.
pub fn landings(graph: &[(String, Vec<String>)], old: Option<&str>, new: &str, start: i64) -> Vec<Landing> {
    let parents: HashMap<&str, &[String]> = graph.iter().map(|(sha, ps)| (sha.as_str(), ps.as_slice())).collect();

    // Which new commits contain the old tip: only those may extend the chain, so that
    // every earlier chain commit stays an ancestor of every later one.
    let mut contains_old: HashSet<&str> = HashSet::new();
    for (sha, ps) in graph {
        let reaches = old.is_none() || ps.iter().any(|p| Some(p.as_str()) == old || contains_old.contains(p.as_str()));
        if reaches {
            contains_old.insert(sha);
        }
    }

    // The chain: the first-parent line back from the new tip, as far as it qualifies.
    let mut chain = Vec::new();
    let mut cursor = Some(new);
    while let Some(sha) = cursor.filter(|sha| parents.contains_key(sha) && contains_old.contains(sha)) {
        chain.push(sha);
        cursor = parents[sha].first().map(String::as_str);
    }
    chain.reverse();

    // Each chain commit claims, at its number, every new commit it contains that no
    // earlier chain commit did.
    let mut landed: HashMap<&str, (i64, bool)> = HashMap::with_capacity(graph.len());
    let mut stack: Vec<&str> = Vec::new();
    for (offset, tip) in chain.iter().enumerate() {
        let position = start + offset as i64;
        stack.push(tip);
        while let Some(sha) = stack.pop() {
            if landed.contains_key(sha) {
                continue;
            }
            let Some(ps) = parents.get(sha) else { continue };
            landed.insert(sha, (position, sha == *tip));
            stack.extend(ps.iter().map(String::as_str).filter(|p| !landed.contains_key(p)));
        }
    }
    graph
        .iter()
        .filter_map(|(sha, _)| landed.get(sha.as_str()).map(|&(position, on_chain)| (sha.clone(), position, on_chain)))
        .collect()
}

/// What a source commit `S` (an image's build commit) contains on one branch: every
/// commit that landed at or before `base`, plus `extras`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePoint {
    pub base: i64,
    pub extras: Vec<String>,
}

/// A commit as [`source_point`] sees it on one branch.
pub struct Visit {
    /// `(position, on_chain)` when the commit has landed on the branch.
    pub landing: Option<(i64, bool)>,
    /// Its parents, or `None` when the commit is not in the ledger at all.
    pub parents: Option<Vec<String>>,
}

/// The most commits [`source_point`] walks for one source commit: a branch that far off
/// its base is described only up to that point.
pub const SOURCE_WALK_LIMIT: usize = 20_000;

/// Describes source commit `sha` on a branch by walking back from it until each line
/// reaches the branch's chain. `lookup` reads one commit (from the ledger). `None` when
/// `sha` itself is unknown.
pub async fn source_point<F, Fut, E>(sha: &str, mut lookup: F) -> Result<Option<SourcePoint>, E>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Visit, E>>,
{
    let mut base = 0;
    let mut off_chain: Vec<(String, Option<i64>)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stack = vec![sha.to_string()];
    while let Some(current) = stack.pop() {
        if !seen.insert(current.clone()) || seen.len() > SOURCE_WALK_LIMIT {
            continue;
        }
        let visit = lookup(current.clone()).await?;
        match (visit.landing, visit.parents) {
            (Some((position, true)), _) => base = base.max(position),
            (_, None) if current == sha => return Ok(None),
            (_, None) => {}
            (landing, Some(parents)) => {
                off_chain.push((current, landing.map(|(position, _)| position)));
                stack.extend(parents);
            }
        }
    }
    let extras = off_chain
        .into_iter()
        .filter(|(_, landing)| landing.is_none_or(|position| position > base))
        .map(|(sha, _)| sha)
        .collect();
    Ok(Some(SourcePoint { base, extras }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges.iter().map(|(sha, ps)| (sha.to_string(), ps.iter().map(|p| p.to_string()).collect())).collect()
    }

    fn position(landings: &[Landing], sha: &str) -> (i64, bool) {
        landings.iter().find(|(s, _, _)| s == sha).map(|(_, p, c)| (*p, *c)).unwrap()
    }

    #[test]
    fn a_merged_branch_lands_with_its_merge() {
        // a - b ------- m - d     (main, first parents)
        //      \- x - y /
        let g = graph(&[("a", &[]), ("b", &["a"]), ("x", &["b"]), ("y", &["x"]), ("m", &["b", "y"]), ("d", &["m"])]);
        let l = landings(&g, None, "d", 1);
        assert_eq!(position(&l, "a"), (1, true));
        assert_eq!(position(&l, "b"), (2, true));
        assert_eq!(position(&l, "x"), (3, false));
        assert_eq!(position(&l, "y"), (3, false));
        assert_eq!(position(&l, "m"), (3, true));
        assert_eq!(position(&l, "d"), (4, true));
    }

    #[test]
    fn an_incremental_sync_continues_the_numbers() {
        // Old tip b was numbered up to 7; the branch fast-forwarded through a merge
        // whose first parent is a side line that forked before b.
        //   b ---------- m    (m's first parent is s, second is b)
        //  a - s -------/
        let g = graph(&[("s", &["a"]), ("m", &["s", "b"])]);
        let l = landings(&g, Some("b"), "m", 8);
        // s does not contain b, so it cannot join the chain: it lands with m.
        assert_eq!(position(&l, "s"), (8, false));
        assert_eq!(position(&l, "m"), (8, true));
    }

    #[tokio::test]
    async fn a_branch_build_is_its_base_plus_its_own_commits() {
        // Chain: a(1) b(2) m(3). Branch commit x forked from b, then y; merged later.
        let landed: HashMap<&str, (i64, bool)> =
            [("a", (1, true)), ("b", (2, true)), ("m", (3, true)), ("x", (3, false))].into_iter().collect();
        let parents: HashMap<&str, Vec<String>> =
            [("a", vec![]), ("b", vec!["a".into()]), ("x", vec!["b".into()]), ("y", vec!["x".into()])]
                .into_iter()
                .collect();
        let lookup = |sha: String| {
            let visit =
                Visit { landing: landed.get(sha.as_str()).copied(), parents: parents.get(sha.as_str()).cloned() };
            async move { Ok::<_, ()>(visit) }
        };
        let point = source_point("y", lookup).await.unwrap().unwrap();
        assert_eq!(point.base, 2);
        let mut extras = point.extras.clone();
        extras.sort();
        assert_eq!(extras, vec!["x".to_string(), "y".to_string()]);
        assert_eq!(source_point("m", lookup).await.unwrap(), Some(SourcePoint { base: 3, extras: vec![] }));
        assert_eq!(source_point("unknown", lookup).await.unwrap(), None);
    }
}
