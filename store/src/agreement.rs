//! Inter-annotator agreement: Kendall's coefficient of concordance W per item, with the correction for ties,
//! and the mean over items. W is 1 when every annotator gives the same ranking and near 0 when they are
//! unrelated.

use std::collections::BTreeMap;

use crate::Ranking;

/// Average ranks (1 = best; tied candidates share the mean of their positions) of `candidates` in a ranking.
pub fn average_ranks(r: &Ranking, candidates: &[u64]) -> Option<Vec<f64>> {
    let mut rank_of = BTreeMap::new();
    let mut next = 1.0;
    for tier in &r.tiers {
        let k = tier.len() as f64;
        let avg = next + (k - 1.0) / 2.0;
        for id in tier {
            rank_of.insert(*id, avg);
        }
        next += k;
    }
    candidates.iter().map(|c| rank_of.get(c).copied()).collect()
}

/// Kendall's W of several complete rankings of the same `candidates` (skipped rankings are ignored). `None`
/// with fewer than two rankings or fewer than two candidates.
pub fn kendalls_w(rankings: &[&Ranking], candidates: &[u64]) -> Option<f64> {
    let rows: Vec<Vec<f64>> = rankings
        .iter()
        .filter(|r| r.skipped.is_none())
        .filter_map(|r| average_ranks(r, candidates))
        .collect();
    let (m, n) = (rows.len() as f64, candidates.len() as f64);
    if rows.len() < 2 || candidates.len() < 2 {
        return None;
    }
    let sums: Vec<f64> = (0..candidates.len()).map(|j| rows.iter().map(|r| r[j]).sum()).collect();
    let mean = sums.iter().sum::<f64>() / n;
    let s: f64 = sums.iter().map(|x| (x - mean).powi(2)).sum();
    // Tie correction: Σ over annotators of Σ over tie groups (t³ − t).
    let ties: f64 = rankings
        .iter()
        .filter(|r| r.skipped.is_none())
        .map(|r| r.tiers.iter().map(|t| (t.len() as f64).powi(3) - t.len() as f64).sum::<f64>())
        .sum();
    let denom = m * m * (n.powi(3) - n) - m * ties;
    if denom <= 0.0 {
        return Some(1.0); // everyone tied everything: perfect (trivial) agreement
    }
    Some((12.0 * s / denom).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(tiers: Vec<Vec<u64>>) -> Ranking {
        Ranking {
            id: 0,
            prompt_id: 0,
            user_id: None,
            tiers,
            skipped: None,
            flags: vec![],
            time_spent_ms: 0,
            source: String::new(),
            created_ms: 0,
            guidelines_version: 0,
        }
    }

    #[test]
    fn identical_rankings_agree_perfectly() {
        let a = r(vec![vec![1], vec![2], vec![3], vec![4]]);
        let b = a.clone();
        assert!((kendalls_w(&[&a, &b], &[1, 2, 3, 4]).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn reversed_rankings_of_two_annotators_have_w_zero() {
        let a = r(vec![vec![1], vec![2], vec![3]]);
        let b = r(vec![vec![3], vec![2], vec![1]]);
        assert!(kendalls_w(&[&a, &b], &[1, 2, 3]).unwrap().abs() < 1e-12);
    }

    #[test]
    fn hand_computed_three_raters_with_a_tie() {
        // Ranks: A = [1,2,3], B = [1,3,2], C = [1.5,1.5,3]. Sums 3.5, 6.5, 8 → mean 6, S = 6.25+0.25+4 = 10.5.
        // Ties: C has one pair → 2³−2 = 6. W = 12·10.5 / (9·24 − 3·6) = 126 / 198.
        let a = r(vec![vec![1], vec![2], vec![3]]);
        let b = r(vec![vec![1], vec![3], vec![2]]);
        let c = r(vec![vec![1, 2], vec![3]]);
        let w = kendalls_w(&[&a, &b, &c], &[1, 2, 3]).unwrap();
        assert!((w - 126.0 / 198.0).abs() < 1e-12, "{w}");
        assert_eq!(average_ranks(&c, &[1, 2, 3]).unwrap(), vec![1.5, 1.5, 3.0]);
    }

    #[test]
    fn one_ranking_has_no_agreement() {
        let a = r(vec![vec![1], vec![2]]);
        assert_eq!(kendalls_w(&[&a], &[1, 2]), None);
    }
}
