//! burn's kernel fusion on or off, on one wgpu adapter: the same transformer encoder (4 layers, d 256, ffn 688,
//! 4 heads, batch 8 × 128 tokens) trained with Adam for a few steps and run forward, on `CubeBackend` (every
//! operation its own kernel) and on `Fusion<CubeBackend>` (element-wise chains fused into one kernel). Prints one
//! JSON line per backend: median milliseconds per training step and per forward.
//!
//! Usage: fusion-bench [cpu|discrete|integrated|default] [steps]   (cpu: lavapipe)

use std::time::Instant;

use burn::{
    backend::{
        wgpu::{CubeBackend, Wgpu, WgpuDevice, WgpuRuntime},
        Autodiff,
    },
    module::AutodiffModule,
    nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput},
    optim::{AdamConfig, GradientsParams, Optimizer},
    tensor::{
        backend::{AutodiffBackend, Backend},
        Distribution, Tensor,
    },
};

/// Every operation its own kernel.
type Plain = CubeBackend<WgpuRuntime, f32, i32, u32>;
/// Element-wise chains fused (burn-fusion over the same runtime).
type Fused = Wgpu<f32, i32, u32>;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// (training-step ms, forward ms, last loss) on `device`.
fn measure<B: AutodiffBackend>(device: &B::Device, warmup: usize, steps: usize) -> (f64, f64, f32) {
    B::seed(device, 7);
    let config = TransformerEncoderConfig::new(256, 688, 4, 4).with_norm_first(true);
    let mut model: TransformerEncoder<B> = config.init(device);
    let x = Tensor::<B, 3>::random([8, 128, 256], Distribution::Normal(0.0, 1.0), device);
    let target = Tensor::<B, 3>::random([8, 128, 256], Distribution::Normal(0.0, 1.0), device);
    let mut optim = AdamConfig::new().init::<B, TransformerEncoder<B>>();
    let (mut train, mut loss_value) = (Vec::new(), 0.0);
    for i in 0..warmup + steps {
        let t = Instant::now();
        let y = model.forward(TransformerEncoderInput::new(x.clone()));
        let loss = (y - target.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        loss_value = loss.into_scalar().to_string().parse().unwrap_or(f32::NAN);
        B::sync(device).expect("sync");
        if i >= warmup {
            train.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let valid = model.valid();
    let xv = x.inner();
    let mut forward = Vec::new();
    for i in 0..warmup + steps {
        let t = Instant::now();
        let y = valid.forward(TransformerEncoderInput::new(xv.clone()));
        let _ = y.sum().into_scalar();
        <B::InnerBackend as Backend>::sync(device).expect("sync");
        if i >= warmup {
            forward.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    (median(train), median(forward), loss_value)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let device = match args.get(1).map(String::as_str).unwrap_or("default") {
        "cpu" => WgpuDevice::Cpu,
        "discrete" => WgpuDevice::DiscreteGpu(0),
        "integrated" => WgpuDevice::IntegratedGpu(0),
        _ => WgpuDevice::DefaultDevice,
    };
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    for (name, (train_ms, forward_ms, loss)) in [
        ("plain", measure::<Autodiff<Plain>>(&device, 2, steps)),
        ("fused", measure::<Autodiff<Fused>>(&device, 2, steps)),
    ] {
        println!(
            "{}",
            serde_json::json!({"bench": "fusion", "backend": name, "device": format!("{device:?}"),
                "train_step_ms": train_ms, "forward_ms": forward_ms, "last_loss": loss, "steps": steps})
        );
    }
}
