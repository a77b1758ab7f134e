//! The records the store keeps. Every record is JSON in sled, so fields can be added with serde defaults.

use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Ranks the items assigned to them.
    Annotator,
    /// Also manages prompts, sees progress and agreement, runs training.
    Operator,
    /// Also manages users.
    Admin,
}

impl Role {
    /// Parses `annotator`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "annotator" => Some(Role::Annotator),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Annotator => "annotator",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: u64,
    /// Login name (unique).
    pub name: String,
    /// Role.
    pub role: Role,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Disabled users cannot log in; their sessions are dropped.
    pub disabled: bool,
    /// Creation time (ms since the epoch).
    pub created_ms: u64,
    /// Paused annotators get no new items (an operator's decision; they can still log in).
    #[serde(default)]
    pub paused: bool,
}

/// A login session (stored under the hash of its token, never the token itself).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Whose session.
    pub user_id: u64,
    /// The CSRF token every state-changing request must echo.
    pub csrf: String,
    /// Expiry (ms since the epoch).
    pub expires_ms: u64,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// Something to answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// Id.
    pub id: u64,
    /// The conversation so far; the last message is the user's.
    pub messages: Vec<Message>,
    /// Where it came from (`file.jsonl:12`, `ui:alice`).
    pub source: String,
    /// Creation time (ms).
    pub created_ms: u64,
}

impl Prompt {
    /// Source prefix of a prompt re-issued for fresh candidates from a newer policy: `resample:<root id>:…`.
    pub const RESAMPLE: &'static str = "resample:";
    /// Source prefix of a blind A/B item (one answer from each of two policies):
    /// `abtest:<root id>:<new policy>:<current policy>`.
    pub const ABTEST: &'static str = "abtest:";

    /// The prompt this one was re-issued from (itself when it is an original): held-out splits group by it, so
    /// that a prompt and its re-issues land on the same side.
    pub fn root_id(&self) -> u64 {
        self.source
            .strip_prefix(Self::RESAMPLE)
            .or_else(|| self.source.strip_prefix(Self::ABTEST))
            .and_then(|rest| rest.split(':').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or(self.id)
    }

    /// The last user message (what the UI shows as the prompt).
    pub fn text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .or(self.messages.last())
            .map_or("", |m| &m.content)
    }
}

/// One answer to a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Id.
    pub id: u64,
    /// The prompt it answers.
    pub prompt_id: u64,
    /// The answer text.
    pub text: String,
    /// Token ids, when a policy generated it.
    #[serde(default)]
    pub tokens: Vec<u32>,
    /// Per-token log-probs under the generating policy.
    #[serde(default)]
    pub logprobs: Vec<f32>,
    /// The policy version that produced it (`None` for imported text).
    #[serde(default)]
    pub policy: Option<String>,
    /// Where it came from.
    pub source: String,
    /// Creation time (ms).
    pub created_ms: u64,
}

/// A flag an annotator can raise on an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Harmful or unsafe content.
    Unsafe,
    /// Contains personal data.
    PersonalData,
    /// Garbled or broken output.
    Broken,
    /// Does not address the prompt.
    OffTopic,
    /// Arena mode's "both bad": stored with a tie of the two answers.
    BothBad,
}

/// One annotator's judgement of a prompt's candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Id.
    pub id: u64,
    /// The prompt.
    pub prompt_id: u64,
    /// Who ranked (`None` for imported preferences).
    pub user_id: Option<u64>,
    /// Candidate ids best first; candidates in the same tier are tied. Empty when skipped.
    pub tiers: Vec<Vec<u64>>,
    /// Why the item was skipped, if it was.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Flags raised.
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// Time the annotator spent (ms).
    #[serde(default)]
    pub time_spent_ms: u64,
    /// Where it came from (`ui`, `file.jsonl:3`).
    pub source: String,
    /// Creation time (ms).
    pub created_ms: u64,
    /// The guidelines version it was made under (0: none were set, or imported).
    #[serde(default)]
    pub guidelines_version: u64,
}

impl Ranking {
    /// The ordered (better, worse) pairs the ranking implies: every pair of candidates in different tiers, ties
    /// excluded. A strict ranking of K gives K·(K−1)/2 pairs.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (i, better) in self.tiers.iter().enumerate() {
            for worse in self.tiers.iter().skip(i + 1) {
                for &b in better {
                    for &w in worse {
                        out.push((b, w));
                    }
                }
            }
        }
        out
    }

    /// The tied pairs (same tier).
    pub fn ties(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for tier in &self.tiers {
            for (i, &a) in tier.iter().enumerate() {
                for &b in &tier[i + 1..] {
                    out.push((a, b));
                }
            }
        }
        out
    }
}

/// A written answer (for SFT).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Demonstration {
    /// Id.
    pub id: u64,
    /// The prompt it answers.
    pub prompt_id: u64,
    /// Who wrote it (`None` for imports).
    pub user_id: Option<u64>,
    /// The answer.
    pub text: String,
    /// Where it came from.
    pub source: String,
    /// Creation time (ms).
    pub created_ms: u64,
}

/// An item in an annotator's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The annotator.
    pub user_id: u64,
    /// The prompt.
    pub prompt_id: u64,
    /// The order the annotator sees the candidates in (shuffled per annotator against position bias).
    pub order: Vec<u64>,
    /// When it was handed out (ms).
    pub assigned_ms: u64,
    /// The ranking that completed it.
    pub ranking_id: Option<u64>,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Id (time-ordered).
    pub id: u64,
    /// When (ms).
    pub at_ms: u64,
    /// Who (user name, `cli`, `system`).
    pub actor: String,
    /// What (`user.add`, `import`, `ranking.submit`, …).
    pub action: String,
    /// Details.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(tiers: Vec<Vec<u64>>) -> Ranking {
        Ranking {
            id: 1,
            prompt_id: 1,
            user_id: None,
            tiers,
            skipped: None,
            flags: vec![],
            time_spent_ms: 0,
            source: "t".into(),
            created_ms: 0,
            guidelines_version: 0,
        }
    }

    #[test]
    fn ranking_of_four_gives_six_pairs() {
        let r = ranking(vec![vec![3], vec![1], vec![4], vec![2]]);
        assert_eq!(r.pairs(), vec![(3, 1), (3, 4), (3, 2), (1, 4), (1, 2), (4, 2)]);
        assert!(r.ties().is_empty());
    }

    #[test]
    fn tied_candidates_give_no_pair_between_them() {
        let r = ranking(vec![vec![1, 2], vec![3]]);
        assert_eq!(r.pairs(), vec![(1, 3), (2, 3)]);
        assert_eq!(r.ties(), vec![(1, 2)]);
    }
}
