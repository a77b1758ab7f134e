//! `alignbox generate`: one prompt through a stored policy, on the process's device, with the weights the
//! process samples with (`--weights`: what candidates and the API use).

use anyhow::{bail, Context};
use trainer::{
    generate::{GenerateConfig, LoadedPolicy, SamplingConfig},
    registry::Registry,
};

use crate::cli::GenerateArgs;

/// Runs the command.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let reg = Registry::new(&args.data.data_dir);
    let id = match args.model.clone().or(reg.default_id()?) {
        Some(id) => id,
        None => bail!(
            "no model given and no default base policy in {} (import one with `alignbox models import`)",
            args.data.data_dir.display()
        ),
    };
    let model = LoadedPolicy::load_with(
        &reg,
        &id,
        super::compute_device::current(),
        super::compute_device::weights(),
    )?;
    let tok = &model.tokenizer;
    let prompt = if args.raw { tok.encode(&args.prompt, true)? } else { tok.chat_prompt(&args.prompt)? };
    if prompt.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let temperature = if args.greedy { 0.0 } else { args.temperature };
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingConfig { temperature, top_k: args.top_k, top_p: args.top_p },
        seed: args.seed,
        stop_ids: model.stop_ids().to_vec(),
        pad_id: tok.pad_id(model.stop_ids()),
    };
    let prompts = vec![prompt; args.num.max(1)];
    let out = model.generate(&prompts, &cfg);
    for (i, prompt_ids) in prompts.iter().enumerate() {
        let text = tok.decode(&out.tokens[i], true).context("decoding")?;
        if args.json {
            let line = serde_json::json!({
                "model": id, "text": text, "prompt_ids": prompt_ids, "tokens": out.tokens[i], "logprobs": out.logprobs[i],
                "finished": out.finished[i], "seed": args.seed, "device": model.device.to_string(),
                "weights": model.weights.as_str(),
            });
            println!("{line}");
        } else {
            println!("{}", text.trim());
        }
    }
    Ok(())
}
