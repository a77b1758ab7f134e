//! `alignbox bench …`: the workloads of ../shared/WORKLOAD.md, on the process's device (`--device`).

use trainer::{
    bench::{self, GenWorkload},
    burn::{backend::Autodiff, tensor::backend::Backend},
    device::Device,
    model::{init, Llama},
    registry::Registry,
    train::recompute::Recompute,
};

use crate::cli::{BenchArgs, BenchCommand};

/// Sets the CPU backend's worker threads; must run before any tensor work starts the pool.
pub fn set_threads(threads: Option<usize>) -> usize {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // burn-flex runs on rayon's global pool, which reads this once when it starts.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    n
}

fn model<B: Backend>(args: &BenchArgs, device: &B::Device) -> anyhow::Result<Llama<B>> {
    if args.model == "tiny-llama-8k" {
        return Ok(init::random::<B>(&init::tiny_llama_8k(), 0.02, 0, device));
    }
    let reg = Registry::new(&args.data.data_dir);
    Ok(reg.load_policy::<B>(&args.model, device)?.0)
}

fn variant(lora: bool, qlora: bool) -> bench::Variant {
    match (lora, qlora) {
        (_, true) => bench::Variant::QLora,
        (true, false) => bench::Variant::Lora,
        (false, false) => bench::Variant::Full,
    }
}

/// Prints `r` as one JSON line, naming the process's device backend.
fn print(mut r: bench::BenchResult) -> anyhow::Result<()> {
    let device = super::compute_device::current();
    if device != Device::Cpu {
        r.backend = format!("{} ({device})", super::compute_device::backend_name(device));
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// Runs a benchmark on the process's device and prints its JSON lines.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let device = super::compute_device::current();
    match cmd {
        BenchCommand::Http(_) => unreachable!("the web layer runs bench http"),
        BenchCommand::Rm { args, lora, qlora, grad_checkpointing } => {
            let threads = set_threads(args.threads);
            let (warmup, iters) = (args.warmup.unwrap_or(3), args.iters.unwrap_or(20));
            let baseline = bench::rss_mb();
            let recompute = Recompute::layers_if(grad_checkpointing);
            let mut r = trainer::with_backend!(device, D, dev => {
                let base = model::<Autodiff<D>>(&args, dev)?;
                bench::rm(base, &args.model, variant(lora, qlora), recompute, threads, warmup, iters)
            });
            r.rss_baseline_mb = Some(baseline);
            print(r)?;
        }
        BenchCommand::Sft { args, lora, qlora, grad_checkpointing } => {
            let threads = set_threads(args.threads);
            let (warmup, iters) = (args.warmup.unwrap_or(3), args.iters.unwrap_or(20));
            let baseline = bench::rss_mb();
            let recompute = Recompute::layers_if(grad_checkpointing);
            let mut r = trainer::with_backend!(device, D, dev => {
                let base = model::<Autodiff<D>>(&args, dev)?;
                bench::sft::sft(base, &args.model, variant(lora, qlora), recompute, threads, warmup, iters)
            });
            r.rss_baseline_mb = Some(baseline);
            print(r)?;
        }
        BenchCommand::Ppo { args, lora } => {
            let threads = set_threads(args.threads);
            let (warmup, iters) = (args.warmup.unwrap_or(2), args.iters.unwrap_or(8));
            print(trainer::with_backend!(device, D, dev => {
                let policy = model::<Autodiff<D>>(&args, dev)?;
                bench::ppo::ppo(policy, &args.model, lora, threads, warmup, iters)
            }))?;
        }
        BenchCommand::Gen(args) => {
            let threads = set_threads(args.threads);
            let w = GenWorkload {
                warmup: args.warmup.unwrap_or(2),
                iters: args.iters.unwrap_or(10).max(1),
                ..Default::default()
            };
            let results = trainer::with_backend!(device, D, dev => {
                let m = model::<D>(&args, dev)?;
                bench::gen(&m, &args.model, threads, &w, dev)
            });
            for r in results {
                print(r)?;
            }
        }
    }
    Ok(())
}
