//! The learning-rate schedule: linear warmup, then constant or cosine decay to a floor.

use serde::{Deserialize, Serialize};

/// Shape of the schedule after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// The peak rate until the end.
    Constant,
    /// Half a cosine from the peak down to `min_ratio`·peak at the last step.
    Cosine,
}

/// A learning-rate schedule over `total_steps` optimizer steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warmup from lr/warmup to lr.
    pub warmup_steps: usize,
    /// Optimizer steps in the run.
    pub total_steps: usize,
    /// Floor of the cosine as a fraction of the peak.
    pub min_ratio: f64,
    /// Constant or cosine after warmup.
    pub decay: Decay,
}

impl Schedule {
    /// The rate of optimizer step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps + 1).max(1);
                let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.lr * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_the_cosine_falls_to_the_floor() {
        let s = Schedule { lr: 1.0, warmup_steps: 4, total_steps: 14, min_ratio: 0.1, decay: Decay::Cosine };
        assert_eq!(s.lr_at(0), 0.25);
        assert_eq!(s.lr_at(3), 1.0);
        assert!((s.lr_at(4) - 1.0).abs() < 1e-12);
        // Half-way through the decay: (1 + 0.1) / 2.
        assert!(
            (s.lr_at(4 + 9 / 2) - (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * 4.0 / 9.0).cos()))).abs()
                < 1e-12
        );
        assert!((s.lr_at(13) - 0.1).abs() < 1e-12);
        assert!(s.lr_at(100) >= 0.1 - 1e-12);
        let c = Schedule { decay: Decay::Constant, ..s };
        assert_eq!(c.lr_at(10), 1.0);
    }
}
