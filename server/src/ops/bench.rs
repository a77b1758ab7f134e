//! `alignbox bench …`: the workloads of ../shared/WORKLOAD.md.

use trainer::{
    backend::{default_device, Infer, Train, TrainBackend, TrainCheckpointed},
    bench::{self, GenWorkload},
    model::{init, Llama},
    registry::Registry,
};

use crate::cli::{BenchArgs, BenchCommand};

/// Sets the CPU backend's worker threads; must run before any tensor work starts the pool.
pub fn set_threads(threads: Option<usize>) -> usize {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // burn-flex runs on rayon's global pool, which reads this once when it starts.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    n
}

fn model(args: &BenchArgs) -> anyhow::Result<Llama<Infer>> {
    let device = default_device();
    if args.model == "tiny-llama-8k" {
        return Ok(init::random::<Infer>(&init::tiny_llama_8k(), 0.02, 0, &device));
    }
    let reg = Registry::new(&args.data.data_dir);
    Ok(reg.load_policy::<Infer>(&args.model, &device)?.0)
}

fn variant(lora: bool, qlora: bool) -> bench::Variant {
    match (lora, qlora) {
        (_, true) => bench::Variant::QLora,
        (true, false) => bench::Variant::Lora,
        (false, false) => bench::Variant::Full,
    }
}

/// The benchmark's model on a training backend.
fn train_model<B: TrainBackend>(args: &BenchArgs) -> anyhow::Result<Llama<B>> {
    let device: trainer::burn::tensor::Device<B> = Default::default();
    if args.model == "tiny-llama-8k" {
        return Ok(init::random::<B>(&init::tiny_llama_8k(), 0.02, 0, &device));
    }
    let reg = Registry::new(&args.data.data_dir);
    Ok(reg.load_policy::<B>(&args.model, &device)?.0)
}

/// Runs a benchmark and prints its JSON lines.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Http(_) => unreachable!("the web layer runs bench http"),
        BenchCommand::Rm { args, lora, qlora, grad_checkpointing } => {
            let threads = set_threads(args.threads);
            let (warmup, iters) = (args.warmup.unwrap_or(3), args.iters.unwrap_or(20));
            let v = variant(lora, qlora);
            let r = if grad_checkpointing {
                let base = train_model::<TrainCheckpointed>(&args)?;
                let mut r = bench::rm(base, &args.model, v, threads, warmup, iters);
                r.bench = format!("{}_ckpt", r.bench);
                r
            } else {
                bench::rm(train_model::<Train>(&args)?, &args.model, v, threads, warmup, iters)
            };
            println!("{}", serde_json::to_string(&r)?);
        }
        BenchCommand::Sft { args, lora, qlora } => {
            let threads = set_threads(args.threads);
            let base = train_model(&args)?;
            let (warmup, iters) = (args.warmup.unwrap_or(3), args.iters.unwrap_or(20));
            let r = bench::sft::sft(base, &args.model, variant(lora, qlora), threads, warmup, iters);
            println!("{}", serde_json::to_string(&r)?);
        }
        BenchCommand::Ppo { args, lora } => {
            let threads = set_threads(args.threads);
            let policy = train_model(&args)?;
            let r = bench::ppo::ppo(
                policy,
                &args.model,
                lora,
                threads,
                args.warmup.unwrap_or(2),
                args.iters.unwrap_or(8),
            );
            println!("{}", serde_json::to_string(&r)?);
        }
        BenchCommand::Gen(args) => {
            let threads = set_threads(args.threads);
            let m = model(&args)?;
            let w = GenWorkload {
                warmup: args.warmup.unwrap_or(2),
                iters: args.iters.unwrap_or(10).max(1),
                ..Default::default()
            };
            for r in bench::gen(&m, &args.model, threads, &w, &default_device()) {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
    }
    Ok(())
}
