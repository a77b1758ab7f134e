//! Which prompts are held out for evaluation, and which items each optimizer step takes. Both are pure functions
//! of ids, seed and step, so a resumed run sees exactly the batches the interrupted one would have seen.

use crate::rng::Rng;

fn mix(mut z: u64) -> u64 {
    // SplitMix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether prompt `prompt_id` belongs to the held-out set (a `fraction` of prompts, chosen by `seed`). Every
/// comparison or demonstration of a prompt lands on the same side: the split is by prompt, never by pair.
pub fn held_out(prompt_id: u64, fraction: f64, seed: u64) -> bool {
    let u = (mix(prompt_id ^ mix(seed.wrapping_add(0x5eed))) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// The item indices optimizer step `step` trains on: `batch` consecutive positions of an endless stream made of
/// one seeded permutation of `0..n` per epoch.
pub fn batch_indices(n: usize, batch: usize, step: usize, seed: u64) -> Vec<usize> {
    assert!(n > 0, "no training items");
    let mut out = Vec::with_capacity(batch);
    let mut cached: Option<(usize, Vec<usize>)> = None;
    for pos in step * batch..(step + 1) * batch {
        let epoch = pos / n;
        if cached.as_ref().map(|c| c.0) != Some(epoch) {
            cached = Some((epoch, permutation(n, mix(seed ^ (epoch as u64).wrapping_mul(0x9e37)))));
        }
        out.push(cached.as_ref().unwrap().1[pos % n]);
    }
    out
}

fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_share_is_close_to_the_fraction_and_stable() {
        let n = (0..10_000u64).filter(|&id| held_out(id, 0.1, 7)).count();
        assert!((900..1100).contains(&n), "{n}");
        assert_eq!(held_out(42, 0.1, 7), held_out(42, 0.1, 7));
        assert!((0..1000u64).all(|id| !held_out(id, 0.0, 7)));
        let other = (0..10_000u64).filter(|&id| held_out(id, 0.1, 7) != held_out(id, 0.1, 8)).count();
        assert!(other > 1000, "the seed changes the split");
    }

    #[test]
    fn each_epoch_visits_every_item_once_and_steps_are_reproducible() {
        let n = 10;
        let mut seen: Vec<usize> = (0..5).flat_map(|s| batch_indices(n, 4, s, 3)).collect();
        assert_eq!(seen.len(), 20);
        let mut first: Vec<usize> = seen.drain(..10).collect();
        first.sort_unstable();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(n, 4, 3, 3), batch_indices(n, 4, 3, 3));
        assert_ne!(batch_indices(n, 10, 0, 3), batch_indices(n, 10, 1, 3), "epochs are reshuffled");
    }
}
