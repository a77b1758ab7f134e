//! The shared training loop: gradient accumulation keeps the effective batch, a run stopped and resumed from its
//! checkpoint reproduces the uninterrupted run's losses exactly, and the reward-model stage learns a hidden rule
//! from ranked groups (ties modelled).

use trainer::{
    backend::{default_device, Train},
    model::{init, LlamaConfig},
    rl::losses::TieModel,
    rm::{optimizer, RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    train::{
        run::{run, Event, EventKind, RunConfig},
        schedule::Decay,
    },
};

const MARKER: u32 = 5;

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":32,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}"#,
    )
    .unwrap()
}

/// Ranked groups of 3 answers: more markers rank higher; equal counts tie.
fn groups(rng: &mut Rng, n: usize) -> Vec<RankGroup> {
    (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..4).map(|_| rng.range(6, 32) as u32).collect();
            let mut answers: Vec<(usize, Vec<u32>)> = (0..3)
                .map(|_| {
                    let markers = rng.range(0, 4) as usize;
                    let mut a: Vec<u32> = (0..6).map(|_| rng.range(6, 32) as u32).collect();
                    for slot in a.iter_mut().take(markers) {
                        *slot = MARKER;
                    }
                    let mut seq = prompt.clone();
                    seq.extend(a);
                    (markers, seq)
                })
                .collect();
            answers.sort_by_key(|a| std::cmp::Reverse(a.0));
            let mut tiers: Vec<Vec<usize>> = Vec::new();
            for (i, a) in answers.iter().enumerate() {
                match tiers.last_mut() {
                    Some(t) if answers[t[0]].0 == a.0 => t.push(i),
                    _ => tiers.push(vec![i]),
                }
            }
            RankGroup::from_tiers(answers.into_iter().map(|a| a.1).collect(), &tiers)
        })
        .filter(|g| !g.wins.is_empty())
        .collect()
}

fn model() -> RewardModel<Train> {
    let device = default_device();
    let trunk = init::random::<Train>(&config(), 0.1, 1, &device);
    let mut rng = Rng::new(5);
    RewardModel::new(trunk, (0..32).map(|_| (rng.normal() * 0.1) as f32).collect(), &device)
}

/// Step losses at the precision the model computes them in (f32).
fn losses(events: &[Event]) -> Vec<f32> {
    events.iter().filter(|e| e.kind == EventKind::Step).map(|e| e.metrics["loss"] as f32).collect()
}

fn task(eval: Vec<RankGroup>, ties: TieModel) -> RmTask {
    RmTask::new(RmTrainConfig { ties, ..Default::default() }, eval, 32)
}

fn cfg(steps: usize, micro: usize) -> RunConfig {
    RunConfig {
        steps,
        batch: 8,
        micro_batch: micro,
        lr: 3e-3,
        warmup_steps: 2,
        decay: Decay::Cosine,
        min_lr_ratio: 0.1,
        seed: 11,
        eval_every: 0,
        checkpoint_every: 2,
    }
}

#[test]
fn gradient_accumulation_matches_the_full_batch() {
    let data = groups(&mut Rng::new(1), 64);
    let t = task(Vec::new(), TieModel::Exclude);
    let mut full = Vec::new();
    let a =
        run(&t, model(), optimizer(&t.cfg), &data, &cfg(4, 8), None, &mut |e| full.push(e.clone()), &|| {
            false
        })
        .unwrap();
    let mut acc = Vec::new();
    let b =
        run(&t, model(), optimizer(&t.cfg), &data, &cfg(4, 3), None, &mut |e| acc.push(e.clone()), &|| false)
            .unwrap();
    let (la, lb) = (losses(&full), losses(&acc));
    assert_eq!(la.len(), 4);
    for (x, y) in la.iter().zip(&lb) {
        assert!((x - y).abs() < 1e-4, "full {la:?} vs accumulated {lb:?}");
    }
    let (wa, wb) = (a.model.score.weight.val().into_data(), b.model.score.weight.val().into_data());
    wa.assert_approx_eq::<f32>(&wb, burn::tensor::Tolerance::absolute(1e-4));
}

#[test]
fn a_cancelled_run_resumes_from_its_checkpoint_with_the_same_losses() {
    let data = groups(&mut Rng::new(2), 64);
    let eval = groups(&mut Rng::new(3), 16);
    let t = task(eval, TieModel::Exclude);
    let mut straight = Vec::new();
    run(&t, model(), optimizer(&t.cfg), &data, &cfg(6, 4), None, &mut |e| straight.push(e.clone()), &|| {
        false
    })
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let steps_seen = std::cell::Cell::new(0);
    let mut first = Vec::new();
    let out = run(
        &t,
        model(),
        optimizer(&t.cfg),
        &data,
        &cfg(6, 4),
        Some(dir.path()),
        &mut |e| {
            if e.kind == EventKind::Step {
                steps_seen.set(steps_seen.get() + 1);
            }
            first.push(e.clone())
        },
        &|| steps_seen.get() >= 3,
    )
    .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.state.step, 3);
    // A fresh model and optimizer: everything comes from the checkpoint.
    let mut second = Vec::new();
    let out = run(
        &t,
        model(),
        optimizer(&t.cfg),
        &data,
        &cfg(6, 4),
        Some(dir.path()),
        &mut |e| second.push(e.clone()),
        &|| false,
    )
    .unwrap();
    assert!(!out.cancelled);
    assert_eq!(second[0].kind, EventKind::Resume);
    assert_eq!(second[0].step, 3);
    let resumed: Vec<f32> = losses(&first).into_iter().chain(losses(&second)).collect();
    assert_eq!(resumed, losses(&straight), "bit-identical loss curve");
    assert_eq!(losses(&out.state.history), losses(&straight));
}

#[test]
fn the_reward_model_stage_learns_ranked_groups_with_ties_modelled() {
    let data = groups(&mut Rng::new(4), 400);
    let eval = groups(&mut Rng::new(5), 100);
    for ties in [TieModel::Exclude, TieModel::Davidson { nu: 1.0 }, TieModel::RaoKupper { theta: 2.0 }] {
        let t = task(eval.clone(), ties);
        let c = RunConfig {
            steps: 120,
            batch: 16,
            micro_batch: 16,
            eval_every: 0,
            checkpoint_every: 0,
            ..cfg(0, 0)
        };
        let out = run(&t, model(), optimizer(&t.cfg), &data, &c, None, &mut |_| {}, &|| false).unwrap();
        eprintln!("{ties:?}: held-out {:?}", out.eval);
        assert!(out.eval["accuracy"] >= 0.95, "{ties:?}: {:?}", out.eval);
    }
}
