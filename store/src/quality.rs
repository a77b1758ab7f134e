//! Annotator quality: accuracy on gold items, agreement with peers and speed, per annotator, and the weight
//! training may give their judgements (`--weight-by-agreement`).
//!
//! Both accuracy and agreement are **tie-aware pairwise** scores: for every pair of answers that two judgements
//! both order, the pair scores 1 when they relate it the same way (both "a better", both "b better" or both
//! "tied"), ½ when exactly one of them ties it, 0 when they order it oppositely. The scores are pooled over
//! pairs (an item of K answers has K·(K−1)/2). An annotator who orders at random scores ½ on strict pairs.

use std::collections::{BTreeMap, HashMap};

pub use types::annotators::AnnotatorStats;

use crate::{gold::GoldItem, Ranking, Role, Store, StoreError, User};

/// What the quality numbers need beyond the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityConfig {
    /// Judged items (gold, or shared with a peer) an annotator needs before their accuracy or agreement sets
    /// their weight; with fewer, their weight is 1 (no evidence against them).
    pub min_items: usize,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self { min_items: 3 }
    }
}

/// The rank (tier index) of each candidate in a judgement.
fn ranks(tiers: &[Vec<u64>]) -> HashMap<u64, usize> {
    tiers.iter().enumerate().flat_map(|(i, t)| t.iter().map(move |c| (*c, i))).collect()
}

/// Tie-aware pairwise agreement of two judgements of one item: (sum of pair scores, pairs both order). Pairs
/// where either judgement lacks a candidate are left out.
pub fn pairwise_agreement(x: &[Vec<u64>], y: &[Vec<u64>]) -> (f64, usize) {
    let (rx, ry) = (ranks(x), ranks(y));
    let mut ids: Vec<u64> = rx.keys().filter(|c| ry.contains_key(c)).copied().collect();
    ids.sort_unstable();
    let (mut sum, mut n) = (0.0, 0);
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let ox = rx[a].cmp(&rx[b]);
            let oy = ry[a].cmp(&ry[b]);
            sum += if ox == oy {
                1.0
            } else if ox.is_eq() || oy.is_eq() {
                0.5
            } else {
                0.0
            };
            n += 1;
        }
    }
    (sum, n)
}

/// The weight of an annotator with pooled score `q`: `clamp(2q − 1, 0, 1)`.
pub fn weight_of(q: f64) -> f64 {
    (2.0 * q - 1.0).clamp(0.0, 1.0)
}

#[derive(Clone, Default)]
struct Tally {
    judged: usize,
    skipped: usize,
    gold_items: usize,
    gold: (f64, usize),
    peer_items: usize,
    peer: (f64, usize),
    time_ms: u64,
}

fn ratio((sum, n): (f64, usize)) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

/// Every annotator's numbers (users with the annotator role, and anyone else who judged an item), by user id.
/// `rankings` are all stored rankings; imported ones (no user) count for nobody.
pub fn annotator_stats(
    users: &[User],
    rankings: &[Ranking],
    gold: &[GoldItem],
    cfg: &QualityConfig,
) -> Vec<AnnotatorStats> {
    let gold: HashMap<u64, &GoldItem> = gold.iter().map(|g| (g.prompt_id, g)).collect();
    let mut by_prompt: BTreeMap<u64, Vec<&Ranking>> = BTreeMap::new();
    for r in rankings.iter().filter(|r| r.user_id.is_some() && r.skipped.is_none()) {
        by_prompt.entry(r.prompt_id).or_default().push(r);
    }
    let mut tally: BTreeMap<u64, Tally> = BTreeMap::new();
    for r in rankings {
        let Some(uid) = r.user_id else { continue };
        let t = tally.entry(uid).or_default();
        t.time_ms += r.time_spent_ms;
        if r.skipped.is_some() {
            t.skipped += 1;
            continue;
        }
        t.judged += 1;
        if let Some(g) = gold.get(&r.prompt_id) {
            let (s, n) = pairwise_agreement(&r.tiers, &g.tiers);
            t.gold_items += 1;
            t.gold = (t.gold.0 + s, t.gold.1 + n);
            continue;
        }
        let peers = by_prompt[&r.prompt_id].iter().filter(|p| p.user_id != r.user_id);
        let mut shared = false;
        for p in peers {
            let (s, n) = pairwise_agreement(&r.tiers, &p.tiers);
            t.peer = (t.peer.0 + s, t.peer.1 + n);
            shared |= n > 0;
        }
        t.peer_items += shared as usize;
    }
    users
        .iter()
        .filter(|u| u.role == Role::Annotator || tally.contains_key(&u.id))
        .map(|u| {
            let t = tally.get(&u.id).map_or_else(Tally::default, Tally::clone);
            let (gold_accuracy, peer_agreement) = (ratio(t.gold), ratio(t.peer));
            let q = match (gold_accuracy, peer_agreement) {
                (Some(g), _) if t.gold_items >= cfg.min_items => Some(g),
                (_, Some(p)) if t.peer_items >= cfg.min_items => Some(p),
                _ => None,
            };
            let items = (t.judged + t.skipped) as f64;
            AnnotatorStats {
                user_id: u.id,
                name: u.name.clone(),
                judged: t.judged,
                skipped: t.skipped,
                gold_judged: t.gold_items,
                gold_accuracy,
                peer_items: t.peer_items,
                peer_agreement,
                time_spent_ms: t.time_ms,
                items_per_hour: (t.time_ms > 0).then(|| items / (t.time_ms as f64 / 3_600_000.0)),
                weight: q.map_or(1.0, weight_of),
                paused: u.paused,
            }
        })
        .collect()
}

impl Store {
    /// Every annotator's numbers from the stored rankings, gold items and accounts.
    pub fn annotator_stats(&self, cfg: &QualityConfig) -> Result<Vec<AnnotatorStats>, StoreError> {
        Ok(annotator_stats(&self.users()?, &self.rankings()?, &self.gold_items()?, cfg))
    }

    /// [`Store::annotator_stats`] as JSONL, one annotator a line (the operator page's `annotators.jsonl`).
    pub fn export_annotators(&self, cfg: &QualityConfig) -> Result<String, StoreError> {
        let mut out = String::new();
        for a in self.annotator_stats(cfg)? {
            out.push_str(&serde_json::to_string(&a).expect("stats serialise"));
            out.push('\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64, name: &str) -> User {
        User {
            id,
            name: name.into(),
            role: Role::Annotator,
            password_hash: String::new(),
            disabled: false,
            created_ms: 0,
            paused: false,
        }
    }

    fn ranking(user: u64, prompt: u64, tiers: Vec<Vec<u64>>, ms: u64) -> Ranking {
        Ranking {
            id: 0,
            prompt_id: prompt,
            user_id: Some(user),
            tiers,
            skipped: None,
            flags: vec![],
            time_spent_ms: ms,
            source: "ui".into(),
            created_ms: 0,
            guidelines_version: 0,
        }
    }

    fn gold(prompt: u64, tiers: Vec<Vec<u64>>) -> GoldItem {
        GoldItem { prompt_id: prompt, tiers, by: "op".into(), source: "t".into(), created_ms: 0 }
    }

    #[test]
    fn pair_scores_by_hand() {
        // x: 1 > 2 > 3; y: 1 > 3 > 2. Pairs (1,2) same, (1,3) same, (2,3) opposite: 2 of 3.
        assert_eq!(pairwise_agreement(&[vec![1], vec![2], vec![3]], &[vec![1], vec![3], vec![2]]), (2.0, 3));
        // x: 1 = 2 > 3; y: 1 > 2 > 3. (1,2) tie against strict: ½; (1,3), (2,3) same: 2.5 of 3.
        assert_eq!(pairwise_agreement(&[vec![1, 2], vec![3]], &[vec![1], vec![2], vec![3]]), (2.5, 3));
        // Both tie the pair: full agreement.
        assert_eq!(pairwise_agreement(&[vec![1, 2]], &[vec![2, 1]]), (1.0, 1));
        // Reversed: nothing.
        assert_eq!(pairwise_agreement(&[vec![1], vec![2]], &[vec![2], vec![1]]), (0.0, 1));
        // Candidates only one judgement has are left out.
        assert_eq!(pairwise_agreement(&[vec![1], vec![2], vec![9]], &[vec![1], vec![2]]), (1.0, 1));
    }

    #[test]
    fn weights_map_chance_to_zero_and_certainty_to_one() {
        assert_eq!(weight_of(1.0), 1.0);
        assert_eq!(weight_of(0.5), 0.0);
        assert_eq!(weight_of(0.2), 0.0);
        assert!((weight_of(0.75) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn gold_accuracy_peer_agreement_speed_and_weight() {
        let users = [user(1, "ann"), user(2, "bob"), user(3, "idle")];
        let golds: Vec<GoldItem> =
            (100..103).map(|p| gold(p, vec![vec![p * 10], vec![p * 10 + 1]])).collect();
        let mut rankings = Vec::new();
        for g in &golds {
            let (a, b) = (g.tiers[0][0], g.tiers[1][0]);
            rankings.push(ranking(1, g.prompt_id, vec![vec![a], vec![b]], 60_000)); // ann: right
            rankings.push(ranking(2, g.prompt_id, vec![vec![b], vec![a]], 30_000));
            // bob: wrong
        }
        // One shared ordinary item of 3 answers: ann 1 > 2 > 3, bob 1 > 3 > 2 (2 of 3 pairs agree).
        rankings.push(ranking(1, 7, vec![vec![1], vec![2], vec![3]], 60_000));
        rankings.push(ranking(2, 7, vec![vec![1], vec![3], vec![2]], 30_000));
        let mut skip = ranking(2, 8, vec![], 30_000);
        skip.skipped = Some("unclear".into());
        rankings.push(skip);
        let stats = annotator_stats(&users, &rankings, &golds, &QualityConfig::default());
        let by = |n: &str| stats.iter().find(|s| s.name == n).unwrap().clone();
        let (ann, bob, idle) = (by("ann"), by("bob"), by("idle"));
        assert_eq!((ann.judged, ann.skipped, ann.gold_judged), (4, 0, 3));
        assert_eq!(ann.gold_accuracy, Some(1.0));
        assert_eq!(bob.gold_accuracy, Some(0.0));
        assert_eq!((ann.peer_items, bob.peer_items), (1, 1));
        assert!((ann.peer_agreement.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((ann.weight, bob.weight), (1.0, 0.0), "three gold items each: gold sets the weight");
        // ann: 4 items in 4 minutes = 60 an hour; bob: 5 items (one skip) in 2.5 minutes = 120 an hour.
        assert!((ann.items_per_hour.unwrap() - 60.0).abs() < 1e-9);
        assert!((bob.items_per_hour.unwrap() - 120.0).abs() < 1e-9);
        assert_eq!((idle.judged, idle.items_per_hour, idle.weight), (0, None, 1.0));
        // With one gold item fewer than the minimum, the (single) peer item is not enough either: weight 1.
        let few = annotator_stats(&users, &rankings, &golds, &QualityConfig { min_items: 4 });
        assert_eq!(few.iter().find(|s| s.name == "bob").unwrap().weight, 1.0);
    }
}
