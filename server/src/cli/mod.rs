//! The command line: one subcommand per job the appliance does.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// alignbox: rank answers in the browser, train a reward model on the rankings, and align the policy against it
/// (SFT, reward model, PPO, DPO, RLOO, GRPO), all in one process.
///
/// Start the appliance with `alignbox serve`, then open the printed address in a browser. Models are managed
/// with `alignbox models`, tried with `alignbox generate`, and measured with `alignbox bench`.
#[derive(Debug, Parser)]
#[command(name = "alignbox", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// How log lines are written to stderr (filter them with ALIGNBOX_LOG, e.g. `info,tower_http=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Where training and sampling compute: `auto` (a CUDA device when the driver has one, else the CPU), `cpu`,
    /// `cuda[:N]`, `vulkan[:N]` (Metal or DX12 where the platform has those instead).
    #[arg(long, global = true, env = "ALIGNBOX_DEVICE", default_value = "auto")]
    pub device: trainer::device::DeviceRequest,

    /// How answers are sampled (`generate`, candidates for annotators, the OpenAI-compatible API): `auto` (Q8
    /// weights with int8 products when the device is the CPU and the model's widths are whole Q8 blocks, else
    /// f32), `f32` (the log-probabilities training computes), `q8` (Q8 on the CPU whatever the device). Training
    /// and its rollouts always compute in f32.
    #[arg(long, global = true, env = "ALIGNBOX_WEIGHTS", default_value = "auto")]
    pub weights: trainer::generate::Weights,

    #[command(subcommand)]
    pub command: Command,
}

/// The format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// What alignbox can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web app (annotation, operator pages) and the training loop on a data directory.
    Serve(ServeArgs),
    /// Import, list and export model versions (HF directories and GGUF files).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Generate an answer from a stored policy (the default base policy unless --model is given).
    Generate(GenerateArgs),
    /// Manage accounts (annotator, operator, admin).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Import JSONL: prompts, candidate sets, rankings, TRL preference pairs, HH-RLHF transcripts,
    /// demonstrations. All or nothing: a bad line names file, line and field, and nothing is written.
    Import {
        /// The .jsonl file.
        file: PathBuf,
        /// Most answers one item may hold (more are refused with file:line).
        #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=256))]
        max_answers: usize,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Export the preference data as JSONL: `rankings` (prompt, responses, tiers) or `pairs` (TRL
    /// prompt/chosen/rejected, every pair of a ranking, ties left out). Both import back.
    Export {
        /// `rankings` or `pairs`.
        #[arg(value_parser = ["rankings", "pairs"])]
        what: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run a benchmark workload of ../shared/WORKLOAD.md and print one JSON line per result.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train a reward model on the stored rankings, a policy on the stored demonstrations (SFT), or continue
    /// pretraining on a text corpus. Prints the memory estimate first, shows progress, checkpoints, resumes an
    /// interrupted run of the same --name, and stores the result as a model version with its lineage.
    #[command(subcommand)]
    Train(Box<TrainCommand>),
    /// Evaluate a stored model on the stored data.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Fresh candidates from the current policy: re-issue up to --resample judged prompts as new items, then
    /// answer every prompt that has no candidates yet.
    Candidates(CandidatesArgs),
    /// Blind A/B items: for held-out prompts, one answer from --model and one from --against as a new
    /// annotation item (annotators see them shuffled, unnamed); their rankings give the human win-rate.
    Abtest(AbTestArgs),
    /// Bias probes of a reward model (and, with --policy, of a policy's answers): counterfactual term swaps and
    /// stereotype pairs (CrowS-Pairs, StereoSet subsets, and <data-dir>/probes/*.jsonl). The report is stored
    /// with the versions; flagged reports block `bundle` unless overridden.
    Probe(ProbeArgs),
    /// Export a model version as a bundle under <data-dir>/exports/<name>/: `model/` (HF directory, adapters
    /// merged; a reward model as LlamaForSequenceClassification), `adapter/` (the LoRA adapter alone, PEFT
    /// layout, when the version was trained with one), `data/rankings.jsonl` and `data/pairs.jsonl` (the
    /// preference data), and `manifest.json` (lineage of every ancestor, data hashes, metrics, config, file
    /// checksums).
    Bundle(BundleArgs),
    /// The whole loop on the base policy with a simulated annotator (hidden rule: concise, finished answers):
    /// candidates → rankings → reward model → PPO, DPO, RLOO and GRPO policies, then the win-rate of each against
    /// the base by the rule and by a second judge that length cannot satisfy (on topic: the prompt's content
    /// words in the answer), and the KL on held-out prompts. Resumable: finished stages are skipped.
    Demo(DemoArgs),
}

/// Options of `alignbox demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The base policy (default: the default base policy).
    #[arg(long)]
    pub base: Option<String>,
    /// Candidates per prompt.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Longest answer.
    #[arg(long, default_value_t = 40)]
    pub max_new_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// LoRA rank of every stage.
    #[arg(long, default_value_t = 16)]
    pub lora: usize,
    /// Reward-model steps (8 ranked prompts each).
    #[arg(long, default_value_t = 60)]
    pub rm_steps: usize,
    /// PPO iterations (8 prompts each).
    #[arg(long, default_value_t = 20)]
    pub ppo_steps: usize,
    /// DPO steps (8 pairs each).
    #[arg(long, default_value_t = 40)]
    pub dpo_steps: usize,
    /// Policy updates to run and measure (ppo, dpo, rloo, grpo; comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "ppo,dpo,rloo,grpo")]
    pub methods: Vec<String>,
    /// RLOO and GRPO: iterations of 2 prompts × 4 answers (the samples PPO's 8 prompts get per iteration).
    #[arg(long, default_value_t = 20)]
    pub group_steps: usize,
    /// Share of prompts held out (for the reward model's evaluation and the win-rates).
    #[arg(long, default_value_t = 0.25)]
    pub eval_fraction: f64,
    /// Answers per held-out prompt and policy for the win-rate.
    #[arg(long, default_value_t = 4)]
    pub eval_samples: usize,
    /// KL budget per answer (nats); PPO's adaptive controller aims at half of it.
    #[arg(long, default_value_t = 8.0)]
    pub kl_budget: f64,
    /// Seed of the splits and samplers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Options of `alignbox candidates`.
#[derive(Debug, Args, Clone)]
pub struct CandidatesArgs {
    /// Judged prompts to re-issue with fresh candidates (most recently judged first; each root prompt once).
    #[arg(long, default_value_t = 0)]
    pub resample: usize,
    /// The policy that answers (default: the current policy).
    #[arg(long)]
    pub model: Option<String>,
    /// Candidates per prompt.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Longest answer in tokens.
    #[arg(long, default_value_t = 160)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Options of `alignbox abtest`.
#[derive(Debug, Args, Clone)]
pub struct AbTestArgs {
    /// The new policy.
    #[arg(long)]
    pub model: String,
    /// The policy it is compared with.
    #[arg(long)]
    pub against: String,
    /// A reward model that also scores both answers (for its agreement with the annotators).
    #[arg(long)]
    pub reward: Option<String>,
    /// Items to create (held-out prompts not used for this pair yet).
    #[arg(long, default_value_t = 16)]
    pub prompts: usize,
    /// Share of prompts held out (the split of training runs with the same seed).
    #[arg(long, default_value_t = 0.1)]
    pub eval_fraction: f64,
    /// Seed of the split and the samplers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest answer.
    #[arg(long, default_value_t = 160)]
    pub max_new_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Options of `alignbox probe`.
#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// The reward-model version probed (it also scores the policy's answers).
    #[arg(long)]
    pub model: String,
    /// A policy version whose answers to counterfactual prompts are compared per term.
    #[arg(long)]
    pub policy: Option<String>,
    /// Suites to run (default: all; built in: counterfactual, crows-pairs, stereoset).
    #[arg(long)]
    pub suite: Vec<String>,
    /// Longest policy answer.
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Options of `alignbox bundle`.
#[derive(Debug, Args, Clone)]
pub struct BundleArgs {
    /// The model version.
    pub model: String,
    /// The bundle's directory name under <data-dir>/exports (default: the version id); letters, digits, `-`,
    /// `_` and `.` only.
    #[arg(long)]
    pub name: Option<String>,
    /// Export although a probe report of the version (or its parents) is flagged; the reason is recorded in the
    /// manifest with the flags.
    #[arg(long)]
    pub r#override: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `alignbox train …` (the server must be stopped: the store is locked while it runs).
#[derive(Clone, Debug, Subcommand)]
pub enum TrainCommand {
    /// Reward model on the stored rankings: every ranking of K answers gives its K-choose-2 comparisons, each
    /// answer forwarded once; loss −log σ(r_better − r_worse − margin); held-out split by prompt.
    Rm(TrainRmArgs),
    /// Supervised fine-tuning on the stored demonstrations (written answers, imported completions): chat template
    /// applied, loss on the answer tokens only.
    Sft(TrainArgs),
    /// Continued pretraining on a raw-text corpus (.txt: one document per blank-line-separated block; .jsonl:
    /// one `{"text": …}` per line): packed blocks, every token in the loss.
    Pretrain(PretrainArgs),
    /// PPO against a stored reward model with a KL penalty to the base (--steps iterations of --batch prompts
    /// from the store: sample, score, update actor and critic). With --lora, actor and critic are adapters on
    /// one frozen base that is also the reference.
    Ppo(TrainPpoArgs),
    /// DPO on the stored rankings (every strict pair), reference log-probs computed once.
    Dpo(TrainDpoArgs),
    /// RLOO against a stored reward model, no critic: --k answers per prompt, each answer's advantage its reward
    /// minus the mean of the other answers to its prompt; the KL to the base subtracted from the reward (k1, β
    /// 0.05). `--advantage reinforce-pp` centres on the group mean and whitens over the batch (REINFORCE++).
    Rloo(TrainGroupArgs),
    /// GRPO against a stored reward model, no critic: --k answers per prompt, advantages normalised within each
    /// prompt's group; the KL to the base in the loss (k3, β 0.04), token losses averaged per answer.
    /// `--advantage dr-grpo` drops the division by the group's std and averages by a constant (Dr. GRPO).
    Grpo(TrainGroupArgs),
}

/// How a reward model's scores are corrected for answer length (PPO, RLOO, GRPO).
#[derive(Debug, Args, Clone)]
pub struct LengthArgs {
    /// Subtract this many reward units per answer token from every score (negative: reward length).
    #[arg(long, conflicts_with = "length_regress")]
    pub length_penalty: Option<f32>,
    /// Remove each batch's least-squares regression of score on answer length, so that length alone cannot
    /// raise the reward.
    #[arg(long)]
    pub length_regress: bool,
}

/// The advantage a critic-free update computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AdvantageArg {
    /// Reward minus the mean of the other answers to the prompt.
    Rloo,
    /// (Reward − group mean) / (group std + 1e-4).
    Grpo,
    /// Reward − group mean (no std), with the constant token norm unless --token-norm says otherwise.
    DrGrpo,
    /// Reward − group mean, whitened over the batch.
    ReinforcePp,
}

/// A per-token KL estimator, from d = log π − log π_ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KlEstimatorArg {
    /// d.
    K1,
    /// d² / 2.
    K2,
    /// e^{−d} − 1 + d.
    K3,
}

/// Where the KL to the reference enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KlInArg {
    /// Subtracted from each answer's reward before the advantages.
    Reward,
    /// Added to the loss per token.
    Loss,
}

/// How token losses are averaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenNormArg {
    /// Per answer, then over answers.
    Sequence,
    /// Over all valid tokens.
    Token,
    /// Sum over tokens / (answers × --max-new-tokens).
    Constant,
}

/// Options of `alignbox train rloo` and `alignbox train grpo` (defaults in brackets are the command's).
#[derive(Debug, Args, Clone)]
pub struct TrainGroupArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The reward-model version that scores the answers.
    #[arg(long)]
    pub reward: String,
    /// Answers sampled per prompt (the group; --batch prompts per iteration each get this many).
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// The advantage [the command's own: rloo, grpo].
    #[arg(long, value_enum)]
    pub advantage: Option<AdvantageArg>,
    /// Longest sampled answer.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// KL coefficient β, the starting value with --kl-target [rloo 0.05, grpo 0.04].
    #[arg(long)]
    pub beta: Option<f64>,
    /// Adapt β toward this KL per answer (nats).
    #[arg(long)]
    pub kl_target: Option<f64>,
    /// Horizon of the adaptive controller (samples).
    #[arg(long, default_value_t = 10000.0)]
    pub kl_horizon: f64,
    /// The per-token KL estimator [rloo k1, grpo k3].
    #[arg(long, value_enum)]
    pub kl_estimator: Option<KlEstimatorArg>,
    /// Where the KL enters [rloo reward, grpo loss].
    #[arg(long, value_enum)]
    pub kl_in: Option<KlInArg>,
    /// How token losses are averaged [rloo token, grpo sequence, dr-grpo constant].
    #[arg(long, value_enum)]
    pub token_norm: Option<TokenNormArg>,
    #[command(flatten)]
    pub length: LengthArgs,
    /// Subtracted from the score of answers that never reach the end-of-turn token.
    #[arg(long)]
    pub missing_eos_penalty: Option<f32>,
    /// Clamp reward-model scores to ±this.
    #[arg(long)]
    pub score_clip: Option<f32>,
    /// Clip of the probability ratio to the sampling policy (1 ± this).
    #[arg(long, default_value_t = 0.2)]
    pub ratio_clip: f64,
    /// Passes over each iteration's samples.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Minibatches per pass.
    #[arg(long, default_value_t = 2)]
    pub minibatches: usize,
    /// Stop an update early when a minibatch's approximate KL to the sampling policy exceeds this.
    #[arg(long)]
    pub stop_kl: Option<f64>,
}

/// Options of `alignbox train ppo`.
#[derive(Debug, Args, Clone)]
pub struct TrainPpoArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The reward-model version that scores the answers.
    #[arg(long)]
    pub reward: String,
    /// Longest sampled answer.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// KL penalty coefficient β (the starting value with --kl-target).
    #[arg(long, default_value_t = 0.05)]
    pub beta: f64,
    /// Adapt β toward this KL per answer (nats) instead of keeping it fixed.
    #[arg(long)]
    pub kl_target: Option<f64>,
    /// Horizon of the adaptive controller (samples).
    #[arg(long, default_value_t = 10000.0)]
    pub kl_horizon: f64,
    /// Passes over each iteration's samples.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Minibatches per pass.
    #[arg(long, default_value_t = 2)]
    pub minibatches: usize,
    /// Subtracted from the score of answers that never reach the end-of-turn token.
    #[arg(long)]
    pub missing_eos_penalty: Option<f32>,
    /// Clamp reward-model scores to ±this.
    #[arg(long)]
    pub score_clip: Option<f32>,
    #[command(flatten)]
    pub length: LengthArgs,
    /// Stop an update early when a minibatch's approximate KL to the sampling policy exceeds this.
    #[arg(long)]
    pub stop_kl: Option<f64>,
}

/// Options of `alignbox train dpo`.
#[derive(Debug, Args, Clone)]
pub struct TrainDpoArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Strength of the implicit KL constraint.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
}

/// How ties in a ranking are used by `train rm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TiesArg {
    /// Tied answers are left out (Bradley-Terry on the strict pairs).
    Exclude,
    /// Davidson's model: ties are likely when scores are close (--tie-param ν, default 1).
    Davidson,
    /// Rao-Kupper's model (--tie-param θ > 1, default 2).
    RaoKupper,
}

/// Decay of the learning rate after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecayArg {
    /// Half a cosine down to --min-lr-ratio.
    Cosine,
    /// Constant.
    Constant,
}

/// Options every training stage shares.
#[derive(Debug, Args, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The stored version to start from (default: the default base policy).
    #[arg(long)]
    pub base: Option<String>,
    /// Id of the version to create; the run directory is named after it, and running again with the same name
    /// resumes from its last checkpoint (default: `<stage>-<base>-<time>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Items per optimizer step (ranked prompts for `rm`, examples or blocks otherwise).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Items per forward/backward pass (gradients are accumulated up to --batch): a number, or `auto` to take the
    /// largest that the memory estimate fits into --memory-budget-mb.
    #[arg(long, default_value = "auto")]
    pub micro_batch: String,
    /// Memory budget for `--micro-batch auto` (default: 80% of the memory available now).
    #[arg(long)]
    pub memory_budget_mb: Option<usize>,
    /// Peak learning rate (default: 1e-5 full fine-tuning, 1e-4 with LoRA).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warmup steps (default: 10% of --steps).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Learning-rate decay after warmup.
    #[arg(long, value_enum, default_value_t = DecayArg::Cosine)]
    pub decay: DecayArg,
    /// Floor of the cosine as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Clip of the global gradient norm (as PyTorch's `clip_grad_norm_`); 0 turns it off.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Seed of the batch order, the split and new weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train LoRA adapters of this rank on a frozen base instead of every weight (merged when stored).
    #[arg(long)]
    pub lora: Option<usize>,
    /// QLoRA: keep the frozen base's projections in 4-bit NormalFloat blocks (dequantized per layer on the fly)
    /// and train LoRA adapters on it (rank --lora, default 8).
    #[arg(long)]
    pub qlora: bool,
    /// P-Tuning v2: train this many prefix keys and values per layer on the frozen base (alone, or together
    /// with --lora). Stored versions keep them in alignbox-prefix.safetensors beside the HF weights.
    #[arg(long)]
    pub prefix: Option<usize>,
    /// LoRA alpha (default: 2 × rank).
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    /// Projections that get adapters (comma-separated: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, default_value = "q_proj,v_proj", value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    /// Share of prompts held out for evaluation (split by prompt).
    #[arg(long, default_value_t = 0.1)]
    pub eval_fraction: f64,
    /// Evaluate every this many steps (default: 5 times per run; always after the last step).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Write a checkpoint every this many steps (and after the last).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: usize,
    /// Longest sequence in tokens (prompts are cut from the left, answers from the right).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Gradient checkpointing: element-wise results are recomputed in the backward pass instead of being kept
    /// (burn's balanced strategy): less activation memory for some extra compute.
    #[arg(long)]
    pub grad_checkpointing: bool,
    /// Progress on stderr: a bar when stderr is a terminal, else one line per evaluation.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// A bar on a terminal, lines otherwise.
    Auto,
    /// A redrawn bar.
    Bar,
    /// One line per step.
    Lines,
    /// Nothing but the estimate and the result.
    Quiet,
}

/// Options of `alignbox train rm`.
#[derive(Debug, Args, Clone)]
pub struct TrainRmArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// How tied answers are used.
    #[arg(long, value_enum, default_value_t = TiesArg::Exclude)]
    pub ties: TiesArg,
    /// ν (Davidson) or θ (Rao-Kupper).
    #[arg(long)]
    pub tie_param: Option<f64>,
    /// Margin inside the loss: −log σ(r_better − r_worse − margin).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// Weight each comparison by the share of the prompt's annotators who ordered the two answers the same way,
    /// times the annotator's weight: 2q − 1 (at least 0) of their accuracy on gold items, or of their agreement
    /// with peers, as the operator page's annotator table shows it (1 for imported rankings).
    #[arg(long)]
    pub weight_by_agreement: bool,
}

/// Options of `alignbox train pretrain`.
#[derive(Debug, Args, Clone)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The corpus: .txt (documents separated by blank lines) or .jsonl (`{"text": …}` per line).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Tokens per packed block.
    #[arg(long, default_value_t = 256)]
    pub block: usize,
}

impl TrainCommand {
    /// The stage's name: `rm`, `sft`, `pretrain`, `ppo`, `dpo`, `rloo` or `grpo`.
    pub fn stage_name(&self) -> &'static str {
        match self {
            Self::Rm(_) => "rm",
            Self::Sft(_) => "sft",
            Self::Pretrain(_) => "pretrain",
            Self::Ppo(_) => "ppo",
            Self::Dpo(_) => "dpo",
            Self::Rloo(_) => "rloo",
            Self::Grpo(_) => "grpo",
        }
    }

    /// The options every stage shares, to change.
    pub fn common_mut(&mut self) -> &mut TrainArgs {
        match self {
            Self::Rm(a) => &mut a.train,
            Self::Sft(a) => a,
            Self::Pretrain(a) => &mut a.train,
            Self::Ppo(a) => &mut a.train,
            Self::Dpo(a) => &mut a.train,
            Self::Rloo(a) | Self::Grpo(a) => &mut a.train,
        }
    }

    /// The options every stage shares.
    pub fn common(&self) -> &TrainArgs {
        match self {
            Self::Rm(a) => &a.train,
            Self::Sft(a) => a,
            Self::Pretrain(a) => &a.train,
            Self::Ppo(a) => &a.train,
            Self::Dpo(a) => &a.train,
            Self::Rloo(a) | Self::Grpo(a) => &a.train,
        }
    }
}

/// `alignbox eval …`.
#[derive(Clone, Debug, Subcommand)]
pub enum EvalCommand {
    /// Loss, accuracy, mean margin and reward statistics of a stored reward model on the stored rankings (by
    /// default the held-out prompts of its training run; --all for every ranking).
    Rm {
        /// The reward-model version.
        #[arg(long)]
        model: String,
        /// Evaluate on every stored ranking instead of the held-out split.
        #[arg(long)]
        all: bool,
        /// Use the held-out split of this (other) reward model's training run: two reward models compared on
        /// the same prompts.
        #[arg(long, conflicts_with = "all")]
        split_of: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// A policy against another on held-out prompts, judged by a reward model: the share of prompts where the
    /// RM scores its answer above the other's (win-rate, with a 95% Wilson interval), mean scores, KL to the
    /// other policy per answer, answer length and distinct-2.
    Policy(EvalPolicyArgs),
}

/// Options of `alignbox eval policy`.
#[derive(Debug, Args, Clone)]
pub struct EvalPolicyArgs {
    /// The policy version evaluated.
    #[arg(long)]
    pub model: String,
    /// The policy it is compared with (default: its first parent).
    #[arg(long)]
    pub against: Option<String>,
    /// The reward-model version that judges.
    #[arg(long)]
    pub reward: String,
    /// Held-out prompts used (at most).
    #[arg(long, default_value_t = 32)]
    pub prompts: usize,
    /// Share of prompts held out (the split of training runs with the same seed).
    #[arg(long, default_value_t = 0.1)]
    pub eval_fraction: f64,
    /// Seed of the split and the samplers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest answer.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[command(flatten)]
    pub data: DataArgs,
}

/// The data directory option shared by commands that read or write it.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Where the store (sled), models and checkpoints live.
    #[arg(long, env = "ALIGNBOX_DATA_DIR", default_value = "./alignbox-data")]
    pub data_dir: PathBuf,
}

/// Options of `alignbox serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port; the chosen address is printed on stdout.
    #[arg(long, env = "ALIGNBOX_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub data: DataArgs,

    /// A model (HF directory or .gguf) to import and make the base policy when the data directory has none.
    #[arg(long, env = "ALIGNBOX_DEFAULT_MODEL")]
    pub default_model: Option<PathBuf>,

    /// How many different annotators rank each item.
    #[arg(long, default_value_t = 2)]
    pub overlap: usize,

    /// Candidates the default policy samples for each prompt that has none (0: do not generate).
    #[arg(long, default_value_t = 4)]
    pub candidates: usize,

    /// Longest generated candidate, in tokens.
    #[arg(long, default_value_t = 160)]
    pub candidate_tokens: usize,

    /// Mark session cookies `Secure` (when serving behind TLS).
    #[arg(long)]
    pub secure_cookies: bool,

    /// A directory holding `pkg/alignbox.js`, `pkg/alignbox_bg.wasm` and `pkg/alignbox.css`, used when the
    /// client bundle was not embedded at build time or to override it.
    #[arg(long, env = "ALIGNBOX_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    /// API requests (`/v1/chat/completions`, `/v1/completions`) generating at once. With Q8 weights they
    /// share one continuous-batching decode loop (each step one forward for all of them).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub api_concurrency: u64,

    /// API requests that may wait for a generation slot; beyond that they are refused with 429 and Retry-After.
    #[arg(long, default_value_t = 32)]
    pub api_queue: usize,

    /// API requests one key may have in flight (waiting or generating); beyond that 429.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub api_per_key: u64,

    /// Longest wait for a generation slot (then 503) and longest generation (then the answer is cut), seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub api_timeout_s: u64,

    /// Failed log-ins of one account or one client address within `--login-window-s` before further attempts
    /// are refused with 429 (1 s, doubling with each further failure, at most the window).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub login_failures: u64,

    /// How long failed log-ins are remembered, seconds (also the longest refusal).
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub login_window_s: u64,

    /// Most answers one imported item may hold (imports from the browser; more are refused with file:line).
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=256))]
    pub max_answers: usize,

    /// The share of each annotator's items that are gold items (prompts with a known order, marked or imported
    /// on the operator page), while they have unseen ones: 0 turns gold items off, 1 hands out every gold item
    /// first.
    #[arg(long, default_value_t = 0.1, value_parser = parse_rate)]
    pub gold_rate: f64,

    /// Largest JSONL file an operator may upload on the operator page, MiB (larger ones are refused with 413 as
    /// soon as their size is known).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub max_upload_mb: u64,
}

/// A share between 0 and 1.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

/// `alignbox models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Import an HF directory (config.json, safetensors, tokenizer.json) or a GGUF file as a new policy version.
    /// The model is loaded and checked first; on any error nothing is stored.
    Import {
        /// The HF directory or .gguf file.
        path: PathBuf,
        /// Version id (default: derived from the file or directory name).
        #[arg(long)]
        name: Option<String>,
        /// Also make it the default base policy.
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List stored versions (the default base policy is marked with *).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a version as an HF directory (config.json, model.safetensors, tokenizer files) that transformers
    /// loads.
    Export {
        /// The version id.
        version: String,
        /// A new or empty directory.
        dir: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Make a version the default base policy.
    SetDefault {
        /// The version id.
        version: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Options of `alignbox generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user message (the model's chat template is applied unless --raw).
    #[arg(long, short)]
    pub prompt: String,
    /// Version id (default: the default base policy).
    #[arg(long)]
    pub model: Option<String>,
    /// Feed the prompt as plain text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Greedy decoding (same as --temperature 0).
    #[arg(long)]
    pub greedy: bool,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of answers to sample (a batch).
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num: usize,
    /// Print JSON (text, token ids, per-token log-probs) instead of plain text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `alignbox bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sampling: 8 prompts × 64 tokens, 64 new tokens each, KV cache, temperature 1; also prefill + first token.
    Gen(BenchArgs),
    /// Reward-model training steps: 8 pairs × 128 tokens on tiny-llama-8k, AdamW, clip 1.0 (`--lora` for r 8 on
    /// q and v).
    Rm {
        #[command(flatten)]
        args: BenchArgs,
        /// LoRA r 8, alpha 16 on q and v instead of full fine-tuning.
        #[arg(long)]
        lora: bool,
        /// The same adapters on a base whose projections are held in NF4 (QLoRA).
        #[arg(long, conflicts_with = "lora")]
        qlora: bool,
        /// With gradient checkpointing (bench `rm_ckpt`).
        #[arg(long)]
        grad_checkpointing: bool,
    },
    /// Supervised fine-tuning steps: 8 demonstrations × 128 tokens (loss on the 64 answer tokens) on
    /// tiny-llama-8k, AdamW, clip 1.0 (`--lora` for r 8 on q and v).
    Sft {
        #[command(flatten)]
        args: BenchArgs,
        /// LoRA r 8, alpha 16 on q and v instead of full fine-tuning.
        #[arg(long)]
        lora: bool,
        /// The same adapters on a base whose projections are held in NF4 (QLoRA).
        #[arg(long, conflicts_with = "lora")]
        qlora: bool,
        /// With layer-wise gradient checkpointing (bench `sft_ckpt`).
        #[arg(long)]
        grad_checkpointing: bool,
    },
    /// One PPO iteration (TRL's formulas): 8 prompts × 64 tokens, 64 new tokens, reference, value and reward
    /// forwards, GAE, 2 minibatches of update; per-phase times (`--lora`: actor and critic as adapters on one
    /// shared base).
    Ppo {
        #[command(flatten)]
        args: BenchArgs,
        /// Actor and critic as LoRA adapters on one frozen base (the reference) instead of four full models.
        #[arg(long)]
        lora: bool,
    },
    /// Ranking-submit latency of the real server on loopback with many concurrent annotators (each on its own
    /// connection): login, then rounds of next item + submit; p50/p99/max of the submits and the errors.
    Http(HttpBenchArgs),
}

/// Options of `alignbox bench http`.
#[derive(Debug, Args)]
pub struct HttpBenchArgs {
    /// Concurrent annotators (one thread and connection each).
    #[arg(long, default_value_t = 500)]
    pub annotators: usize,
    /// Submits per annotator.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Candidates per item.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Mean time an annotator spends on an item before submitting (uniform ±50%); 0 = closed loop, which
    /// measures saturation rather than latency.
    #[arg(long, default_value_t = 1000)]
    pub think_ms: u64,
}

/// Options shared by benchmarks.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `tiny-llama-8k` (random init, fixed seed) or a stored version id.
    #[arg(long, default_value = "tiny-llama-8k")]
    pub model: String,
    /// Worker threads of the CPU backend (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Untimed calls before timing (default: the workload's, 2 for gen, 3 for rm).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed calls (default: the workload's, 10 for gen, 20 for rm).
    #[arg(long)]
    pub iters: Option<usize>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `alignbox users …` (the server must be stopped: the store is locked while it runs).
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an account. The password is read from ALIGNBOX_PASSWORD, or generated and printed.
    Add {
        /// Login name.
        name: String,
        /// annotator, operator or admin.
        #[arg(long, default_value = "annotator")]
        role: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable an account (it can no longer log in; its sessions end).
    Disable {
        /// Login name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Issue an API key for /v1/chat/completions; prints the secret once (only its hash is stored).
    ApiKey {
        /// What the key is for.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}
