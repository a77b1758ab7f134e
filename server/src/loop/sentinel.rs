//! The reward-hacking sentinel: signals that the policy is gaming the reward model rather than getting better.
//! When one crosses its threshold the loop pauses policy updates and says why.

use types::LoopSettings;

/// What the loop has measured about a new policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// Pearson correlation of the reward model's score with answer length on the new policy's held-out answers.
    pub length_corr: Option<f64>,
    /// Share of annotators' strict A/B preferences the reward model agrees with, and how many there were.
    pub rm_agreement: Option<(f64, usize)>,
    /// KL per answer accumulated from the first policy over every promotion, with this one.
    pub kl_total: Option<f64>,
}

/// Least strict A/B judgements before the agreement signal counts.
pub const MIN_AGREEMENT_JUDGEMENTS: usize = 4;

/// The reasons to pause (empty: none).
pub fn check(s: &LoopSettings, sig: &Signals) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(r) = sig.length_corr.filter(|r| *r > s.max_length_corr) {
        why.push(format!(
            "the reward tracks answer length (correlation {r:.2} > {:.2}): the policy may be padding answers",
            s.max_length_corr
        ));
    }
    if let Some((a, n)) =
        sig.rm_agreement.filter(|(a, n)| *n >= MIN_AGREEMENT_JUDGEMENTS && *a < s.min_rm_agreement)
    {
        why.push(format!(
            "the reward model agrees with annotators on only {:.0}% of {n} fresh A/B judgements (< {:.0}%)",
            a * 100.0,
            s.min_rm_agreement * 100.0
        ));
    }
    if let Some(k) = sig.kl_total.filter(|k| *k > s.max_total_kl) {
        why.push(format!(
            "the KL from the first policy would grow to {k:.1} nats per answer (> {:.1})",
            s.max_total_kl
        ));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_trips_only_past_its_threshold() {
        let s = LoopSettings {
            max_length_corr: 0.8,
            min_rm_agreement: 0.6,
            max_total_kl: 20.0,
            ..Default::default()
        };
        let calm = Signals { length_corr: Some(0.3), rm_agreement: Some((0.9, 10)), kl_total: Some(5.0) };
        assert!(check(&s, &calm).is_empty());
        let padded = Signals { length_corr: Some(0.93), ..calm.clone() };
        let why = check(&s, &padded);
        assert_eq!(why.len(), 1);
        assert!(why[0].contains("answer length") && why[0].contains("0.93"), "{why:?}");
        let disagree = Signals { rm_agreement: Some((0.4, 10)), ..calm.clone() };
        assert!(check(&s, &disagree)[0].contains("40% of 10"));
        let few = Signals { rm_agreement: Some((0.0, 2)), ..calm.clone() };
        assert!(check(&s, &few).is_empty(), "two judgements are not evidence");
        let drift = Signals { kl_total: Some(25.0), ..calm };
        assert!(check(&s, &drift)[0].contains("25.0 nats"));
        assert!(check(&s, &Signals::default()).is_empty(), "no measurement, no alarm");
    }
}
