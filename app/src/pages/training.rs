//! The operator dashboard of the loop: live job progress (server-sent events), charts, the loop's settings and
//! decisions, starting jobs with their memory estimate shown first, model versions as a lineage tree with
//! promote and roll back, and export bundles to download.

use leptos::prelude::*;

use crate::{
    api::{
        auth::{whoami, Me},
        jobs::{
            cancel_job, estimate_job, load_dashboard, load_job, pause_loop, promote, rollback, set_loop,
            submit_job,
        },
    },
    components::chart::LineChart,
};
use types::{
    views::{Dashboard, JobDetail, JobView, VersionView},
    LoopSettings, VersionKind,
};

/// Job kinds an operator can start, with their default options (`{rm}`, `{policy}`: the accepted reward model
/// and the current policy).
const KINDS: [(&str, &str); 11] = [
    ("train rm", "--steps 60 --batch 8 --lora 16"),
    ("train ppo", "--reward {rm} --steps 20 --batch 8 --lora 16 --kl-target 4"),
    ("train rloo", "--reward {rm} --k 4 --steps 20 --batch 4 --lora 16 --kl-target 4"),
    ("train grpo", "--reward {rm} --k 4 --steps 20 --batch 4 --lora 16 --kl-target 4"),
    ("train dpo", "--steps 40 --batch 8 --lora 16"),
    ("train sft", "--steps 60 --batch 8 --lora 16"),
    ("eval policy", "--model {policy} --reward {rm} --prompts 32"),
    ("abtest", "--model NEW-POLICY --against {policy} --reward {rm} --prompts 16"),
    ("probe", "--model {rm}"),
    ("candidates", "--resample 32"),
    ("bundle", "{policy}"),
];

/// The page (operators and admins; others see why not).
#[component]
pub fn TrainingPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <leptos_meta::Title text="Training · alignbox"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r {
                Ok(Some(me)) if me.role != "annotator" => view! { <Training me/> }.into_any(),
                Ok(Some(_)) => view! { <p id="forbidden" class="error">"This page is for operators."</p> }.into_any(),
                _ => view! { <p>"You are not logged in. " <a href="/login">"Log in"</a></p> }.into_any(),
            })}
        </Suspense>
    }
}

fn clean(e: ServerFnError) -> String {
    e.to_string().replace("error running server function: ", "")
}

fn fill(template: &str, d: Option<&Dashboard>) -> String {
    let rm = d.and_then(|d| d.loop_view.state.accepted_rm.clone()).unwrap_or_else(|| "RM-VERSION".into());
    let policy = d.and_then(|d| d.loop_view.current_policy.clone()).unwrap_or_else(|| "POLICY".into());
    template.replace("{rm}", &rm).replace("{policy}", &policy)
}

/// Opens the job event stream; every message replaces `jobs`. Closed when the page goes away.
#[cfg(feature = "hydrate")]
fn listen(jobs: RwSignal<Option<Vec<JobView>>>) {
    use leptos::wasm_bindgen::{closure::Closure, JsCast};
    let Ok(source) = web_sys::EventSource::new("/api/events") else { return };
    let on_jobs = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        if let Some(text) = ev.data().as_string() {
            if let Ok(list) = serde_json::from_str::<Vec<JobView>>(&text) {
                jobs.set(Some(list));
            }
        }
    });
    let _ = source.add_event_listener_with_callback("jobs", on_jobs.as_ref().unchecked_ref());
    on_jobs.forget();
    let source = send_wrapper::SendWrapper::new(source);
    on_cleanup(move || source.close());
}

#[cfg(not(feature = "hydrate"))]
fn listen(_jobs: RwSignal<Option<Vec<JobView>>>) {}

#[component]
fn Training(me: Me) -> impl IntoView {
    let csrf = StoredValue::new(me.csrf);
    let data = Resource::new(|| (), |_| load_dashboard());
    let live = RwSignal::new(None::<Vec<JobView>>);
    let message = RwSignal::new(String::new());
    let selected = RwSignal::new(None::<u64>);
    let detail = Resource::new(
        move || selected.get(),
        |id| async move {
            match id {
                Some(id) => load_job(id).await.map(Some),
                None => Ok(None),
            }
        },
    );
    Effect::new(move |_| listen(live));
    reload_on_state_change(live, data, detail, selected);
    let jobs =
        move || live.get().or_else(|| data.get().and_then(|r| r.ok()).map(|d| d.jobs)).unwrap_or_default();
    // Starting a job: check and estimate first, then start.
    let kind = RwSignal::new(KINDS[0].0.to_string());
    let options = RwSignal::new(KINDS[0].1.to_string());
    let estimate = RwSignal::new(None::<Result<String, String>>);
    Effect::new(move |_| {
        let k = kind.get();
        let template = KINDS.iter().find(|(n, _)| *n == k).map_or("", |(_, t)| t);
        let d = data.get_untracked().and_then(|r| r.ok());
        options.set(fill(template, d.as_ref()));
        estimate.set(None);
    });
    let check = Action::new(move |c: &String| estimate_job(c.clone()));
    Effect::new(move |_| {
        if let Some(r) = check.value().get() {
            estimate.set(Some(r.map_err(clean)));
        }
    });
    let start = Action::new(move |c: &String| submit_job(csrf.get_value(), c.clone()));
    Effect::new(move |_| {
        if let Some(r) = start.value().get() {
            match r {
                Ok(j) => {
                    message.set(format!("Job {} queued: {}", j.id, j.command));
                    selected.set(Some(j.id));
                    estimate.set(None);
                }
                Err(e) => message.set(clean(e)),
            }
            data.refetch();
        }
    });
    let cancel = Action::new(move |id: &u64| cancel_job(csrf.get_value(), *id));
    announce(cancel, message, None, |j| format!("Job {}: {}", j.id, j.message));
    let promote_action = Action::new(move |v: &String| promote(csrf.get_value(), v.clone()));
    announce(promote_action, message, Some(data), |_| "Promoted.".to_string());
    let rollback_action = Action::new(move |_: &()| rollback(csrf.get_value()));
    announce(rollback_action, message, Some(data), |p| format!("Rolled back: {p} is the current policy."));
    let save = Action::new(move |s: &LoopSettings| set_loop(csrf.get_value(), s.clone()));
    announce(save, message, Some(data), |_| "Loop settings saved.".to_string());
    let pause = Action::new(move |p: &bool| pause_loop(csrf.get_value(), *p));
    announce(pause, message, Some(data), |_| "Loop state saved.".to_string());
    let export = move |v: String| {
        start.dispatch(format!("bundle {v}"));
    };

    view! {
        <section class="training">
            <h1>"Training loop"</h1>
            <p id="training-message" class="saved" aria-live="polite">{move || message.get()}</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{clean(e)}</p> }.into_any(),
                    Ok(d) => view! { <LoopPanel d=d.clone() save pause/> <Versions d rollback_action promote_action export/> }.into_any(),
                })}
            </Transition>

            <Launcher kind options estimate check start/>

            <h2>"Jobs"</h2>
            <table id="jobs">
                <thead><tr><th>"Job"</th><th>"Kind"</th><th>"State"</th><th>"Progress"</th><th>"Status"</th><th>"Time"</th><th></th></tr></thead>
                <tbody>
                    <For each=jobs key=|j| (j.id, j.state.clone(), j.step, j.message.clone()) let:j>
                        <JobRow j=j.clone() selected cancel/>
                    </For>
                </tbody>
            </table>

            <JobDetailPanel detail/>

            <ChartsAndExports data/>
        </section>
    }
}

type DashboardResource = Resource<Result<Dashboard, ServerFnError>>;

/// Shows what an action answered in the message line, and reloads the dashboard when given one.
fn announce<I: Send + Sync + 'static, T: Clone + Send + Sync + 'static>(
    action: Action<I, Result<T, ServerFnError>>,
    message: RwSignal<String>,
    reload: Option<DashboardResource>,
    ok: impl Fn(T) -> String + Send + Sync + 'static,
) {
    Effect::new(move |_| {
        if let Some(r) = action.value().get() {
            message.set(r.map(&ok).unwrap_or_else(clean));
            if let Some(d) = reload {
                d.refetch();
            }
        }
    });
}
type DetailResource = Resource<Result<Option<JobDetail>, ServerFnError>>;

/// When a job changes state, the versions, charts and decisions change too: reload them.
fn reload_on_state_change(
    live: RwSignal<Option<Vec<JobView>>>,
    data: DashboardResource,
    detail: DetailResource,
    selected: RwSignal<Option<u64>>,
) {
    Effect::new(move |prev: Option<Vec<(u64, String)>>| {
        let states: Vec<(u64, String)> =
            live.get().unwrap_or_default().iter().map(|j| (j.id, j.state.clone())).collect();
        if prev.as_ref().is_some_and(|p| *p != states) {
            data.refetch();
            if selected.get_untracked().is_some() {
                detail.refetch();
            }
        }
        states
    });
}

/// Starting a job: its kind and options, checked and estimated first, then started.
#[component]
fn Launcher(
    kind: RwSignal<String>,
    options: RwSignal<String>,
    estimate: RwSignal<Option<Result<String, String>>>,
    check: Action<String, Result<String, ServerFnError>>,
    start: Action<String, Result<JobView, ServerFnError>>,
) -> impl IntoView {
    let command = move || format!("{} {}", kind.get_untracked(), options.get_untracked());
    view! {
        <h2>"Start a job"</h2>
        <div class="actions">
            <select id="job-kind" on:change=move |ev| kind.set(event_target_value(&ev)) prop:value=move || kind.get()>
                {KINDS.iter().map(|(k, _)| view! { <option value=*k>{*k}</option> }).collect_view()}
            </select>
            <input id="job-options" prop:value=move || options.get()
                on:input=move |ev| { options.set(event_target_value(&ev)); estimate.set(None); }/>
            <button id="job-estimate" class="secondary" on:click=move |_| { check.dispatch(command()); }>"Check and estimate"</button>
            <button id="job-start" disabled=move || !matches!(estimate.get(), Some(Ok(_)))
                on:click=move |_| { start.dispatch(command()); }>"Start"</button>
        </div>
        <p id="job-estimate-text" class=move || if matches!(estimate.get(), Some(Err(_))) { "error" } else { "hint" }>
            {move || match estimate.get() {
                None => "Check the command to see its memory estimate before starting it.".to_string(),
                Some(Ok(e)) => format!("Memory estimate: {e}"),
                Some(Err(e)) => e,
            }}
        </p>

    }
}

/// The selected job: its command, error, curves and log.
#[component]
fn JobDetailPanel(detail: DetailResource) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || detail.get().map(|r| match r {
                Ok(Some(d)) => view! {
                    <section id="job-detail" data-job-id=d.job.id>
                        <h2>"Job " {d.job.id} ": " {d.job.command.clone()}</h2>
                        {d.job.error.clone().map(|e| view! { <p class="error">{e}</p> })}
                        <div class="charts" id="job-charts">
                            {d.charts.into_iter().map(|chart| view! { <LineChart chart/> }).collect_view()}
                        </div>
                        <pre class="log" id="job-log">{d.log.join("\n")}</pre>
                    </section>
                }.into_any(),
                Ok(None) => ().into_any(),
                Err(e) => view! { <p class="error">{clean(e)}</p> }.into_any(),
            })}
        </Transition>

    }
}

/// Charts over versions and evaluations, and the export bundles to download.
#[component]
fn ChartsAndExports(data: DashboardResource) -> impl IntoView {
    view! {
        <h2>"Charts"</h2>
        <Transition fallback=|| ()>
            {move || data.get().and_then(|r| r.ok()).map(|d| view! {
                <div class="charts" id="charts">
                    {d.charts.into_iter().map(|chart| view! { <LineChart chart/> }).collect_view()}
                </div>
                <h2>"Exports"</h2>
                <ul id="bundles">
                    {d.bundles.into_iter().map(|b| {
                        let name = b.name.clone();
                        view! {
                            <li data-bundle=b.name.clone()><strong>{b.name.clone()}</strong>
                                <ul>{b.files.into_iter().map(|f| view! {
                                    <li><a href=format!("/api/exports/{name}/{f}") download="">{f.clone()}</a></li>
                                }).collect_view()}</ul>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            })}
        </Transition>
    }
}

#[component]
fn JobRow(
    j: JobView,
    selected: RwSignal<Option<u64>>,
    cancel: Action<u64, Result<JobView, ServerFnError>>,
) -> impl IntoView {
    let id = j.id;
    let live = j.state == "queued" || j.state == "running";
    let max = j.total.max(1);
    let value = if j.state == "done" { max } else { j.step.min(max) };
    view! {
        <tr data-job-id=id data-state=j.state.clone() class=format!("job {}", j.state) on:click=move |_| selected.set(Some(id))>
            <td>{id}</td>
            <td>{j.kind.clone()}<br/><span class="hint">{j.origin.clone()}</span></td>
            <td class="state">{j.state.clone()}</td>
            <td><progress max=max value=value></progress>" " {format!("{}/{}", j.step, j.total)}</td>
            <td class="message">{j.error.clone().unwrap_or(j.message.clone())}</td>
            <td>{format!("{:.0} s", j.seconds)}</td>
            <td>{live.then(|| view! {
                <button class="secondary cancel" on:click=move |ev| { ev.stop_propagation(); cancel.dispatch(id); }>"Cancel"</button>
            })}</td>
        </tr>
    }
}

#[component]
fn LoopPanel(
    d: Dashboard,
    save: Action<LoopSettings, Result<(), ServerFnError>>,
    pause: Action<bool, Result<(), ServerFnError>>,
) -> impl IntoView {
    let v = d.loop_view;
    let s = RwSignal::new(v.settings.clone());
    let paused = v.settings.paused;
    let num = |ev: &leptos::ev::Event| event_target_value(ev).trim().parse::<f64>().ok();
    let decisions: Vec<String> = v.state.decisions.iter().rev().take(20).map(|d| d.text.clone()).collect();
    let sentinel = v.state.sentinel.clone();
    view! {
        {(!sentinel.is_empty()).then(|| view! {
            <div id="sentinel" class="sentinel">
                <strong>"The reward-hacking sentinel paused the loop."</strong>
                <ul>{sentinel.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                <span class="hint">"Resume the loop once you have looked into it."</span>
            </div>
        })}
        <div class="stats">
            <span id="loop-status">{v.status.clone()}</span>
            <span id="current-policy">"current policy: " {v.current_policy.clone().unwrap_or_else(|| "none".into())}</span>
            <span id="accepted-rm">"reward model: " {v.state.accepted_rm.clone().unwrap_or_else(|| "none yet".into())}</span>
            <span>{v.comparisons} " comparisons"</span>
        </div>
        <div class="actions">
            <button id="loop-pause" class="secondary" on:click=move |_| { pause.dispatch(!paused); }>{if paused { "Resume the loop" } else { "Pause the loop" }}</button>
        </div>
        <details class="loop-settings">
            <summary>"Loop settings"</summary>
            <label>"Retrain the reward model after this many new comparisons "
                <input id="set-rm-after" type="number" prop:value=v.settings.rm_after
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.rm_after = x as usize) }/></label>
            <label>"Policy update "
                <select id="set-method" prop:value=v.settings.method.name() on:change=move |ev| if let Ok(m) = event_target_value(&ev).parse() { s.update(|s| s.method = m) }>
                    <option value="ppo">"PPO"</option><option value="dpo">"DPO"</option>
                    <option value="rloo">"RLOO (no critic)"</option><option value="grpo">"GRPO (no critic)"</option>
                </select></label>
            <label>"Reward-model options " <input id="set-rm-options" prop:value=v.settings.rm_options.clone()
                on:input=move |ev| s.update(|s| s.rm_options = event_target_value(&ev))/></label>
            <label>"Policy options " <input id="set-policy-options" prop:value=v.settings.policy_options.clone()
                on:input=move |ev| s.update(|s| s.policy_options = event_target_value(&ev))/></label>
            <label>"Evaluation options " <input id="set-eval-options" prop:value=v.settings.eval_options.clone()
                on:input=move |ev| s.update(|s| s.eval_options = event_target_value(&ev))/></label>
            <label>"Accept a reward model whose accuracy drops by at most "
                <input id="set-rm-tolerance" prop:value=v.settings.rm_tolerance
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.rm_tolerance = x) }/></label>
            <label>"KL budget (nats per answer) " <input id="set-kl-budget" prop:value=v.settings.kl_budget
                on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.kl_budget = x) }/></label>
            <label>"Minimum win-rate against the current policy " <input id="set-min-win" prop:value=v.settings.min_win_rate
                on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.min_win_rate = x) }/></label>
            <label>"Blind A/B items for annotators before a promotion (0: none) "
                <input id="set-ab-items" type="number" prop:value=v.settings.ab_items
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.ab_items = x as usize) }/></label>
            <label>"Hours to wait for their judgements (then decide on those given; 0: wait for ever) "
                <input id="set-ab-wait" prop:value=v.settings.ab_wait_hours
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.ab_wait_hours = x) }/></label>
            <label>"Minimum annotators' win-rate on them " <input id="set-min-human-win" prop:value=v.settings.min_human_win_rate
                on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.min_human_win_rate = x) }/></label>
            <label>"Sentinel: maximum correlation of reward with answer length "
                <input id="set-max-length-corr" prop:value=v.settings.max_length_corr
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.max_length_corr = x) }/></label>
            <label>"Sentinel: minimum reward-model agreement with annotators on A/B items "
                <input id="set-min-agreement" prop:value=v.settings.min_rm_agreement
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.min_rm_agreement = x) }/></label>
            <label>"Sentinel: maximum KL accumulated over promotions (nats per answer) "
                <input id="set-max-total-kl" prop:value=v.settings.max_total_kl
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.max_total_kl = x) }/></label>
            <label>"Export gate: maximum rate of preferring stereotyped answers "
                <input id="set-max-stereotype" prop:value=v.settings.max_stereotype_rate
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.max_stereotype_rate = x) }/></label>
            <label>"Export gate: maximum counterfactual score gap (standard deviations) "
                <input id="set-max-gap" prop:value=v.settings.max_counterfactual_gap
                    on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.max_counterfactual_gap = x) }/></label>
            <label>"Prompts re-issued after a promotion " <input id="set-resample" type="number" prop:value=v.settings.resample
                on:input=move |ev| if let Some(x) = num(&ev) { s.update(|s| s.resample = x as usize) }/></label>
            <button id="loop-save" on:click=move |_| { save.dispatch(s.get_untracked()); }>"Save settings"</button>
        </details>
        <h2>"Decisions"</h2>
        <ul id="decisions">{decisions.into_iter().map(|t| view! { <li>{t}</li> }).collect_view()}</ul>
    }
}

fn metric_line(v: &VersionView) -> String {
    const SHOWN: [&str; 6] = ["accuracy", "rm_win_rate", "kl", "score", "loss", "reward_accuracy"];
    v.metrics
        .iter()
        .filter(|(k, _)| SHOWN.contains(&k.as_str()))
        .map(|(k, x)| format!("{k} {x:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[component]
fn Versions(
    d: Dashboard,
    rollback_action: Action<(), Result<String, ServerFnError>>,
    promote_action: Action<String, Result<(), ServerFnError>>,
    export: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let versions = d.versions;
    let ids: Vec<String> = versions.iter().map(|v| v.id.clone()).collect();
    // A version hangs under its first parent; versions without a listed parent are roots.
    fn node(
        v: &VersionView,
        all: &[VersionView],
        promote_action: Action<String, Result<(), ServerFnError>>,
        export: impl Fn(String) + Copy + Send + Sync + 'static,
    ) -> AnyView {
        let children: Vec<&VersionView> = all.iter().filter(|c| c.parents.first() == Some(&v.id)).collect();
        let id = v.id.clone();
        let (pid, eid) = (id.clone(), id.clone());
        let promotable = v.kind == VersionKind::Policy && !v.current;
        view! {
            <li data-version=id.clone() class=if v.current { "version current" } else { "version" }>
                <strong>{id.clone()}</strong> " " <span class="hint">{format!("{} · {}", v.kind, v.stage)}</span>
                {v.current.then(|| view! { <span class="badge" id="current-badge">"current"</span> })}
                {v.accepted.then(|| view! { <span class="badge">"accepted"</span> })}
                " " <span class="metrics">{metric_line(v)}</span>
                {v.probed.then(|| {
                    let n = v.probe_flags.len();
                    let title = v.probe_flags.join("\n");
                    let class = if n > 0 { "probes flagged" } else { "probes clean" };
                    view! {
                        <span class=class title=title>
                            {if n > 0 { format!(" probes: {n} flagged") } else { " probes: clean".to_string() }}
                        </span>
                    }
                })}
                {(v.parents.len() > 1).then(|| view! { <span class="hint">{format!(" (also from {})", v.parents[1..].join(", "))}</span> })}
                {promotable.then(|| view! {
                    <button class="secondary promote" on:click=move |_| { promote_action.dispatch(pid.clone()); }>"Promote"</button>
                })}
                <button class="secondary export" on:click=move |_| export(eid.clone())>"Export"</button>
                {(!children.is_empty()).then(|| view! {
                    <ul>{children.into_iter().map(|c| node(c, all, promote_action, export)).collect_view()}</ul>
                })}
            </li>
        }
        .into_any()
    }
    let roots: Vec<VersionView> =
        versions.iter().filter(|v| v.parents.first().is_none_or(|p| !ids.contains(p))).cloned().collect();
    view! {
        <h2>"Model versions"</h2>
        <div class="actions">
            <button id="rollback" class="secondary" on:click=move |_| { rollback_action.dispatch(()); }>"Roll back the current policy"</button>
        </div>
        <ul id="lineage" class="lineage">
            {roots.iter().map(|r| node(r, &versions, promote_action, export)).collect_view()}
        </ul>
    }
}
