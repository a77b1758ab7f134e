//! The commands the loop queues, built from its settings' option strings (shell quoting, as on the command
//! line) and checked as typed job commands before they are queued.

use types::{argv, ControlError, LoopSettings, Method};

use crate::{cli::EvalCommand, ops::JobCommand};

/// The words of an option string (settings were checked when saved; a string saved before quoting was
/// understood falls back to whitespace words).
fn words(opts: &str) -> Vec<String> {
    argv::split(opts).unwrap_or_else(|_| opts.split_whitespace().map(String::from).collect())
}

fn with(head: &[&str], opts: &str) -> Vec<String> {
    head.iter().map(|w| w.to_string()).chain(words(opts)).collect()
}

/// `train rm` with the settings' reward-model options.
pub fn train_rm(s: &LoopSettings) -> Vec<String> {
    with(&["train", "rm"], &s.rm_options)
}

/// `eval rm` of the accepted reward model `old` on the held-out split of `new`.
pub fn compare_rm(old: &str, new: &str) -> Vec<String> {
    with(&["eval", "rm", "--model", old, "--split-of", new], "")
}

/// The policy update against reward model `rm` with the settings' method and options.
pub fn update_policy(s: &LoopSettings, rm: &str) -> Vec<String> {
    match s.method {
        Method::Dpo => with(&["train", "dpo"], &s.policy_options),
        m => with(&["train", m.name(), "--reward", rm], &s.policy_options),
    }
}

/// `eval policy` of `new` against `current` judged by `rm`, with the settings' evaluation options.
pub fn eval_policy(s: &LoopSettings, new: &str, current: &str, rm: &str) -> Vec<String> {
    with(&["eval", "policy", "--model", new, "--against", current, "--reward", rm], &s.eval_options)
}

/// Blind A/B items of `new` against `against`: on the evaluation's held-out split, sampled as the evaluation
/// sampled (its `--eval-fraction`, `--seed`, `--max-new-tokens` and `--temperature`, read from the typed
/// evaluation command), scored by `rm` when there is one.
pub fn abtest(s: &LoopSettings, new: &str, against: &str, rm: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> =
        ["abtest", "--model", new, "--against", against, "--prompts", &s.ab_items.to_string()]
            .map(String::from)
            .to_vec();
    if let Ok(JobCommand::Eval(EvalCommand::Policy(e))) =
        JobCommand::parse(&eval_policy(s, new, against, "x"))
    {
        out.extend([
            "--eval-fraction".to_string(),
            e.eval_fraction.to_string(),
            "--seed".into(),
            e.seed.to_string(),
            "--max-new-tokens".into(),
            e.max_new_tokens.to_string(),
            "--temperature".into(),
            e.temperature.to_string(),
        ]);
    }
    if let Some(rm) = rm {
        out.extend(["--reward".to_string(), rm.to_string()]);
    }
    out
}

/// Fresh candidates from newly promoted `policy`.
pub fn candidates(s: &LoopSettings, policy: &str) -> Vec<String> {
    ["candidates", "--resample", &s.resample.to_string(), "--model", policy].map(String::from).to_vec()
}

/// Whether the settings' option strings parse as the jobs they configure.
pub fn check_options(s: &LoopSettings) -> Result<(), ControlError> {
    let parse = |what: &str, argv: Vec<String>| {
        JobCommand::parse(&argv).map(|_| ()).map_err(|e| ControlError::Invalid(format!("{what}: {e}")))
    };
    for (opts, what, trains) in [
        (&s.rm_options, "reward-model options", true),
        (&s.policy_options, "policy options", true),
        (&s.eval_options, "evaluation options", false),
    ] {
        let w = argv::split(opts).map_err(|e| ControlError::Invalid(format!("{what}: {e}")))?;
        if trains && w.iter().any(|w| w == "--name" || w.starts_with("--name=")) {
            return Err(ControlError::Invalid(format!(
                "{what}: --name cannot be set: every loop run is named after its job"
            )));
        }
    }
    parse("reward-model options", train_rm(s))?;
    parse("policy options", update_policy(s, "x"))?;
    parse("evaluation options", eval_policy(s, "x", "z", "y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_b_items_use_the_evaluation_split_and_sampling() {
        let s = LoopSettings {
            eval_options: "--prompts 32 --eval-fraction 0.25 --max-new-tokens=8 --seed 3".into(),
            ab_items: 5,
            ..LoopSettings::default()
        };
        let a = abtest(&s, "new", "old", Some("rm"));
        let at = |flag: &str| a.iter().position(|w| w == flag).map(|i| a[i + 1].as_str());
        assert_eq!(at("--eval-fraction"), Some("0.25"));
        assert_eq!(at("--max-new-tokens"), Some("8"));
        assert_eq!(at("--seed"), Some("3"));
        assert_eq!(at("--prompts"), Some("5"));
        assert_eq!(at("--reward"), Some("rm"));
        assert!(matches!(JobCommand::parse(&a), Ok(JobCommand::Abtest(_))), "{a:?}");
    }

    #[test]
    fn option_strings_are_checked_as_the_jobs_they_configure() {
        let ok = LoopSettings {
            policy_options: r#"--steps 2 --lora-targets "q_proj,v_proj""#.into(),
            ..Default::default()
        };
        assert!(check_options(&ok).is_ok());
        let named = LoopSettings { rm_options: "--name x".into(), ..Default::default() };
        assert!(check_options(&named).unwrap_err().to_string().contains("--name cannot be set"));
        let bad = LoopSettings { eval_options: "--prompts lots".into(), ..Default::default() };
        assert!(check_options(&bad).unwrap_err().to_string().starts_with("evaluation options"));
        let open = LoopSettings { rm_options: "--steps '3".into(), ..Default::default() };
        assert!(check_options(&open).unwrap_err().to_string().contains("unclosed"));
    }
}
