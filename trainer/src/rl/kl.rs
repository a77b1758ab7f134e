//! The KL penalty coefficient: fixed, or adapted toward a KL target (Ziegler et al.'s proportional controller,
//! as in TRL and OpenRLHF).

use serde::{Deserialize, Serialize};

/// Controls β of the per-token penalty β·(log π − log π_ref).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KlController {
    /// β never changes.
    Fixed { beta: f64 },
    /// β moves so that the observed KL approaches `target` within `horizon` samples.
    Adaptive { beta: f64, target: f64, horizon: f64 },
}

impl KlController {
    /// The current β.
    pub fn beta(&self) -> f64 {
        match self {
            KlController::Fixed { beta } | KlController::Adaptive { beta, .. } => *beta,
        }
    }

    /// Updates β after an iteration that observed mean KL `kl` over `n_samples` samples.
    pub fn update(&mut self, kl: f64, n_samples: usize) {
        if let KlController::Adaptive { beta, target, horizon } = self {
            let error = (kl / *target - 1.0).clamp(-0.2, 0.2);
            *beta *= 1.0 + error * n_samples as f64 / *horizon;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adaptive_controller_raises_beta_above_the_target_and_lowers_it_below() {
        let mut c = KlController::Adaptive { beta: 0.1, target: 6.0, horizon: 10_000.0 };
        c.update(12.0, 256);
        assert!(c.beta() > 0.1);
        let high = c.beta();
        c.update(1.0, 256);
        assert!(c.beta() < high);
        let mut f = KlController::Fixed { beta: 0.05 };
        f.update(100.0, 256);
        assert_eq!(f.beta(), 0.05);
    }
}
