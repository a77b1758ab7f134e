//! The continuous loop's settings: when it trains, with which options, and every threshold it decides by.

use serde::{Deserialize, Serialize};

/// How the loop updates the policy against an accepted reward model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// PPO against the reward model (`train ppo --reward RM`).
    #[default]
    Ppo,
    /// DPO on the stored rankings (`train dpo`).
    Dpo,
    /// RLOO against the reward model, no critic (`train rloo --reward RM`).
    Rloo,
    /// GRPO against the reward model, no critic (`train grpo --reward RM`).
    Grpo,
}

impl Method {
    /// Every method, in the order the dashboard lists them.
    pub const ALL: [Method; 4] = [Method::Ppo, Method::Dpo, Method::Rloo, Method::Grpo];

    /// The lower-case name (`ppo`, `dpo`, `rloo`, `grpo`), as in `train <name>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ppo => "ppo",
            Self::Dpo => "dpo",
            Self::Rloo => "rloo",
            Self::Grpo => "grpo",
        }
    }

    /// Whether it trains against the reward model (everything but DPO, which reads the rankings).
    pub fn uses_reward_model(self) -> bool {
        self != Self::Dpo
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("method {s:?}: use ppo, dpo, rloo or grpo"))
    }
}

/// Settings of the continuous loop (stored; every threshold is the operator's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopSettings {
    /// Nothing new starts while paused (a running job finishes).
    pub paused: bool,
    /// Retrain the reward model after this many new comparisons (pairs from rankings).
    pub rm_after: usize,
    /// Policy update method.
    pub method: Method,
    /// Options of the reward-model job (`train rm …`).
    pub rm_options: String,
    /// Options of the policy job (`train ppo …` / `train dpo …`).
    pub policy_options: String,
    /// Options of the policy evaluation (`eval policy …`).
    pub eval_options: String,
    /// A new reward model is accepted when its held-out accuracy is at least the accepted one's minus this
    /// (both measured on the new model's held-out rankings).
    pub rm_tolerance: f64,
    /// A new policy is promoted only if its KL to the current policy per answer stays under this (nats).
    pub kl_budget: f64,
    /// … and its reward-model win-rate against the current policy is at least this.
    pub min_win_rate: f64,
    /// Blind A/B items (one answer of each policy) put in the annotation queue before a promotion; 0 skips the
    /// human check.
    #[serde(default)]
    pub ab_items: usize,
    /// … and the annotators' win-rate of the new policy on them must be at least this (ties count half).
    #[serde(default = "half")]
    pub min_human_win_rate: f64,
    /// Hours to wait for all A/B judgements; then the loop decides on those it has (none: the policy is kept).
    /// 0 waits for ever.
    #[serde(default = "default_ab_wait")]
    pub ab_wait_hours: f64,
    /// Sentinel: pause when the reward's correlation with answer length on the new policy's answers exceeds this.
    #[serde(default = "default_length_corr")]
    pub max_length_corr: f64,
    /// Sentinel: pause when the reward model agrees with fewer than this share of annotators' A/B preferences.
    #[serde(default = "default_agreement")]
    pub min_rm_agreement: f64,
    /// Sentinel: pause when the KL per answer accumulated over promotions from the first policy would exceed this.
    #[serde(default = "default_total_kl")]
    pub max_total_kl: f64,
    /// Export gate: a reward model preferring stereotyped sentences more often than this (and significantly
    /// above 50%) is flagged.
    #[serde(default = "default_stereotype")]
    pub max_stereotype_rate: f64,
    /// Export gate: a counterfactual score gap between groups larger than this many standard deviations of the
    /// probe scores is flagged.
    #[serde(default = "default_gap")]
    pub max_counterfactual_gap: f64,
    /// Judged prompts re-issued with candidates from a newly promoted policy.
    pub resample: usize,
}

impl Default for LoopSettings {
    fn default() -> Self {
        Self {
            paused: false,
            rm_after: 200,
            method: Method::Ppo,
            rm_options: "--steps 60 --batch 8 --lora 16".into(),
            policy_options: "--steps 20 --batch 8 --lora 16 --kl-target 4".into(),
            eval_options: "--prompts 32".into(),
            rm_tolerance: 0.02,
            kl_budget: 8.0,
            min_win_rate: 0.55,
            ab_items: 16,
            min_human_win_rate: 0.5,
            ab_wait_hours: default_ab_wait(),
            max_length_corr: default_length_corr(),
            min_rm_agreement: default_agreement(),
            max_total_kl: default_total_kl(),
            max_stereotype_rate: default_stereotype(),
            max_counterfactual_gap: default_gap(),
            resample: 32,
        }
    }
}

fn half() -> f64 {
    0.5
}
fn default_ab_wait() -> f64 {
    24.0
}
fn default_length_corr() -> f64 {
    0.8
}
fn default_agreement() -> f64 {
    0.6
}
fn default_total_kl() -> f64 {
    40.0
}
fn default_stereotype() -> f64 {
    0.65
}
fn default_gap() -> f64 {
    0.5
}
