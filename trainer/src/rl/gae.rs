//! Generalised advantage estimation over per-token rewards, and advantage whitening over valid tokens. Host
//! arithmetic on `[batch][tokens]` rows (sequences are short; the recursion is sequential in time).

/// Advantages and returns from per-token `rewards` and `values` (`[batch][tokens]`, invalid tokens masked out by
/// `mask`): δ_t = r_t + γ V_{t+1} − V_t, A_t = δ_t + γλ A_{t+1}, returns = A + V. Positions past a sequence's
/// last valid token contribute nothing.
pub fn gae(
    rewards: &[Vec<f32>],
    values: &[Vec<f32>],
    mask: &[Vec<f32>],
    gamma: f32,
    lambda: f32,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut advantages = Vec::with_capacity(rewards.len());
    let mut returns = Vec::with_capacity(rewards.len());
    for ((r, v), m) in rewards.iter().zip(values).zip(mask) {
        let n = r.len();
        let mut adv = vec![0f32; n];
        let mut next_value = 0f32;
        let mut next_adv = 0f32;
        for t in (0..n).rev() {
            if m[t] == 0.0 {
                next_value = 0.0;
                next_adv = 0.0;
                continue;
            }
            let delta = r[t] + gamma * next_value - v[t];
            adv[t] = delta + gamma * lambda * next_adv;
            next_value = v[t];
            next_adv = adv[t];
        }
        returns.push(adv.iter().zip(v).zip(m).map(|((a, v), m)| (a + v) * m).collect());
        advantages.push(adv);
    }
    (advantages, returns)
}

/// Shifts and scales advantages to mean 0 and variance 1 over valid tokens (invalid ones set to 0).
pub fn whiten(advantages: &mut [Vec<f32>], mask: &[Vec<f32>]) {
    let valid: Vec<f32> = advantages
        .iter()
        .zip(mask)
        .flat_map(|(a, m)| a.iter().zip(m).filter(|(_, m)| **m != 0.0).map(|(a, _)| *a))
        .collect();
    if valid.len() < 2 {
        return;
    }
    let n = valid.len() as f64;
    let mean = valid.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = valid.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let std = (var + 1e-8).sqrt();
    for (a, m) in advantages.iter_mut().zip(mask) {
        for (x, m) in a.iter_mut().zip(m) {
            *x = if *m != 0.0 { ((*x as f64 - mean) / std) as f32 } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value() {
        let rewards = vec![vec![0.1, -0.2, 0.0, 1.5]];
        let values = vec![vec![0.5, 0.4, 0.3, 0.2]];
        let mask = vec![vec![1.0; 4]];
        let (adv, ret) = gae(&rewards, &values, &mask, 1.0, 1.0);
        let to_go = [1.4f32, 1.3, 1.5, 1.5];
        for t in 0..4 {
            assert!((adv[0][t] - (to_go[t] - values[0][t])).abs() < 1e-6, "t={t}");
            assert!((ret[0][t] - to_go[t]).abs() < 1e-6);
        }
    }

    #[test]
    fn gae_discounts_by_gamma_lambda_and_stops_at_the_mask() {
        let (adv, _) = gae(&[vec![0.0, 1.0, 9.0]], &[vec![0.0, 0.0, 0.0]], &[vec![1.0, 1.0, 0.0]], 1.0, 0.5);
        assert_eq!(adv[0], vec![0.5, 1.0, 0.0]);
    }

    #[test]
    fn whitening_gives_zero_mean_unit_variance_over_valid_tokens() {
        let mut a = vec![vec![1.0, 2.0, 3.0, 100.0]];
        let mask = vec![vec![1.0, 1.0, 1.0, 0.0]];
        whiten(&mut a, &mask);
        assert!((a[0][0] + 1.0).abs() < 1e-6 && a[0][1].abs() < 1e-6 && (a[0][2] - 1.0).abs() < 1e-6);
        assert_eq!(a[0][3], 0.0);
    }
}
