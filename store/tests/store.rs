//! The store on a real sled database in a temp directory: durability across reopen, transactions that write
//! all or nothing, schema versions, users and sessions.

use store::{annotation::QueuePolicy, Batch, Role, Session, Store, StoreError};

fn import(store: &Store, text: &str) -> Batch {
    let batch = store::import::parse(text.as_bytes(), "t.jsonl", &Default::default(), &mut || {
        store.new_id().unwrap()
    })
    .unwrap();
    store.write_batch(&batch, "test", "import").unwrap();
    batch
}

#[test]
fn imported_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        import(
            &s,
            "{\"prompt\": \"Order\", \"responses\": [\"x\", \"y\", \"z\"], \"tiers\": [[2], [0], [1]]}\n",
        );
    }
    let s = Store::open(dir.path()).unwrap();
    let prompts = s.prompts().unwrap();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].text(), "Order");
    let cands = s.candidates_of(prompts[0].id).unwrap();
    assert_eq!(cands.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), ["x", "y", "z"]);
    let rankings = s.rankings_of(prompts[0].id).unwrap();
    assert_eq!(rankings.len(), 1);
    assert_eq!(rankings[0].tiers, vec![vec![cands[2].id], vec![cands[0].id], vec![cands[1].id]]);
    assert_eq!(rankings[0].pairs().len(), 3);
    assert_eq!(s.audit_log().unwrap().last().unwrap().action, "import");
}

#[test]
fn a_batch_with_a_dangling_reference_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut batch = store::import::parse(
        b"{\"prompt\": \"P\", \"responses\": [\"a\", \"b\"]}\n",
        "t",
        &Default::default(),
        &mut || s.new_id().unwrap(),
    )
    .unwrap();
    batch.candidates[1].prompt_id = 999_999; // no such prompt
    let err = s.write_batch(&batch, "test", "import").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { what: "prompt", .. }), "{err}");
    assert!(s.prompts().unwrap().is_empty(), "the prompt of the failed batch was written");
    assert!(s.audit_log().unwrap().is_empty());
}

#[test]
fn the_schema_version_is_recorded_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
    }
    {
        let db = store::open_db(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert(b"schema_version", &99u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, supported: 3 }), "{err}");
}

#[test]
fn users_are_unique_by_name_and_disabling_drops_their_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let alice = s.add_user("alice", Role::Annotator, "hash", "cli").unwrap();
    let err = s.add_user("alice", Role::Admin, "hash", "cli").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(s.user_by_name("alice").unwrap().unwrap().id, alice.id);
    s.put_session(b"tok", &Session { user_id: alice.id, csrf: "c".into(), expires_ms: u64::MAX }).unwrap();
    let mut disabled = alice.clone();
    disabled.disabled = true;
    s.update_user(&disabled, "cli", "disabled").unwrap();
    assert!(s.session(b"tok").unwrap().is_none());
    assert!(s.user(alice.id).unwrap().unwrap().disabled);
}

#[test]
fn each_item_goes_to_overlap_annotators_and_never_twice_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\", \"3\", \"4\"]}\n{\"prompt\": \"B\", \"responses\": [\"x\", \"y\"]}\n");
    let users: Vec<u64> =
        (0..3).map(|i| s.add_user(&format!("u{i}"), Role::Annotator, "h", "t").unwrap().id).collect();
    let mut seen = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    for &u in &users {
        while let Some(a) = s.next_assignment(u, &QueuePolicy::overlap(2)).unwrap() {
            assert_eq!(
                s.next_assignment(u, &QueuePolicy::overlap(2)).unwrap().unwrap(),
                a,
                "the open item is handed out again until done"
            );
            let tiers = a.order.iter().map(|&c| vec![c]).collect();
            s.submit(u, "t", a.prompt_id, &store::annotation::Judgement { tiers, ..Default::default() })
                .unwrap();
            seen.entry(a.prompt_id).or_default().push(u);
        }
    }
    assert_eq!(seen.len(), 2);
    for (prompt, who) in &seen {
        assert_eq!(who.len(), 2, "prompt {prompt} went to {who:?}");
        assert_ne!(who[0], who[1]);
    }
    assert!(s.next_assignment(users[2], &QueuePolicy::overlap(2)).unwrap().is_none());
    assert_eq!(s.rankings().unwrap().len(), 4, "two prompts × overlap 2");
}

#[test]
fn a_submission_must_cover_every_candidate_once_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\", \"3\"]}\n");
    let u = s.add_user("u", Role::Annotator, "h", "t").unwrap().id;
    let a = s.next_assignment(u, &QueuePolicy::overlap(2)).unwrap().unwrap();
    let o = &a.order;
    use store::annotation::Judgement;
    let bad = Judgement { tiers: vec![vec![o[0]], vec![o[1]]], ..Default::default() };
    assert!(s.submit(u, "t", a.prompt_id, &bad).unwrap_err().to_string().contains("every candidate"));
    let dup = Judgement { tiers: vec![vec![o[0]], vec![o[0], o[1], o[2]]], ..Default::default() };
    assert!(s.submit(u, "t", a.prompt_id, &dup).is_err());
    assert!(s.rankings().unwrap().is_empty());
    let tie = Judgement {
        tiers: vec![vec![o[1], o[2]], vec![o[0]]],
        better_answer: Some("mine".into()),
        ..Default::default()
    };
    let r = s.submit(u, "t", a.prompt_id, &tie).unwrap();
    assert_eq!(r.ties(), vec![(o[1], o[2])]);
    assert_eq!(s.demonstrations().unwrap()[0].text, "mine");
    let again = s.submit(u, "t", a.prompt_id, &tie).unwrap_err().to_string();
    assert!(again.contains("already submitted"), "{again}");
    let other = s.add_user("v", Role::Annotator, "h", "t").unwrap().id;
    assert!(s.submit(other, "t", a.prompt_id, &tie).unwrap_err().to_string().contains("not assigned"));
}

#[test]
fn exported_rankings_and_pairs_import_back_to_the_same_preferences() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(
        &s,
        concat!(
            "{\"prompt\": \"Order\", \"responses\": [\"x\", \"y\", \"z\", \"w\"], \"tiers\": [[2], [0, 3], [1]]}\n",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}], ",
            "\"chosen\": [{\"role\": \"assistant\", \"content\": \"Hello.\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"Go.\"}]}\n"
        ),
    );
    let rankings = s.export_rankings().unwrap();
    let pairs = s.export_pairs().unwrap();
    assert_eq!(rankings.lines().count(), 2);
    // 3 tiers of 1, 2, 1 → 5 pairs (the tie gives none), plus the chat pair.
    assert_eq!(pairs.lines().count(), 6);

    let other = tempfile::tempdir().unwrap();
    let t = Store::open(other.path()).unwrap();
    import(&t, &rankings);
    let texts = |st: &Store| {
        let mut all: Vec<Vec<Vec<String>>> = st
            .rankings()
            .unwrap()
            .iter()
            .map(|r| {
                r.tiers
                    .iter()
                    .map(|tier| tier.iter().map(|id| st.candidate(*id).unwrap().unwrap().text).collect())
                    .collect()
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(texts(&s), texts(&t));
    let third = tempfile::tempdir().unwrap();
    let u = Store::open(third.path()).unwrap();
    import(&u, &pairs);
    assert_eq!(u.rankings().unwrap().len(), 6);
    assert_eq!(u.prompts().unwrap()[5].messages.len(), 2, "the system message survives");
}

#[test]
fn migrating_a_version_1_store_rebuilds_the_assignment_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let s = Store::open(dir.path()).unwrap();
        import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\"]}\n");
        let a = s.add_user("a", Role::Annotator, "h", "t").unwrap().id;
        let b = s.add_user("b", Role::Annotator, "h", "t").unwrap().id;
        assert!(s.next_assignment(a, &QueuePolicy::overlap(2)).unwrap().is_some());
        assert!(s.next_assignment(b, &QueuePolicy::overlap(2)).unwrap().is_some());
        (a, b)
    };
    {
        // Turn it into what version 1 wrote: no counters.
        let db = store::open_db(dir.path()).unwrap();
        db.open_tree("assign_counts").unwrap().clear().unwrap();
        db.open_tree("meta").unwrap().insert(b"schema_version", &1u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    let c = s.add_user("c", Role::Annotator, "h", "t").unwrap().id;
    assert!(
        s.next_assignment(c, &QueuePolicy::overlap(2)).unwrap().is_none(),
        "the item already has its two annotators"
    );
    assert!(
        s.next_assignment(a, &QueuePolicy::overlap(2)).unwrap().is_some()
            && s.next_assignment(b, &QueuePolicy::overlap(2)).unwrap().is_some()
    );
}

#[test]
fn migrating_a_version_2_store_types_the_loop_documents_and_job_results() {
    let dir = tempfile::tempdir().unwrap();
    let (good, legacy) = {
        let s = Store::open(dir.path()).unwrap();
        let good = s.enqueue_job(vec!["eval".into(), "rm".into()], "eval rm", "loop").unwrap().id;
        let legacy = s.enqueue_job(vec!["x".into()], "x", "loop").unwrap().id;
        (good, legacy)
    };
    {
        // What version 2 wrote: results and loop documents as free JSON (an old settings document lacks the
        // fields added later; one job's result has a kind no type knows).
        let db = store::open_db(dir.path()).unwrap();
        let jobs = db.open_tree("jobs").unwrap();
        for (id, result) in [
            (
                good,
                serde_json::json!({"version": "rm-1", "kind": "evaluation", "metrics": {"accuracy": 0.75, "x": null}}),
            ),
            (legacy, serde_json::json!({"version": "v", "kind": "something-else"})),
        ] {
            let mut job: serde_json::Value =
                serde_json::from_slice(&jobs.get(store::key(id)).unwrap().unwrap()).unwrap();
            job["result"] = result;
            jobs.insert(store::key(id), serde_json::to_vec(&job).unwrap()).unwrap();
        }
        let meta = db.open_tree("meta").unwrap();
        let old_settings = serde_json::json!({"paused": false, "rm_after": 7, "method": "dpo", "rm_options": "",
            "policy_options": "", "eval_options": "", "rm_tolerance": 0.0, "kl_budget": 3.0, "min_win_rate": 0.5,
            "resample": 1});
        meta.insert("loop_settings", serde_json::to_vec(&old_settings).unwrap()).unwrap();
        meta.insert(b"schema_version", &2u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    let r = s.job(good).unwrap().unwrap().result.unwrap();
    assert_eq!(
        (r.version.as_str(), r.kind, r.metric("accuracy")),
        ("rm-1", types::ResultKind::Evaluation, Some(0.75))
    );
    assert!(r.metrics["x"].is_nan(), "a null metric reads back as NaN");
    assert_eq!(s.job(legacy).unwrap().unwrap().result, None, "an unknown result is dropped, the job stays");
    let settings = s.loop_settings().unwrap();
    assert_eq!((settings.rm_after, settings.method), (7, types::Method::Dpo));
    assert_eq!(settings.ab_wait_hours, 24.0, "fields added later get their defaults");
}

#[test]
fn guidelines_are_versioned_and_each_ranking_records_the_version_it_was_made_under() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\"]}\n{\"prompt\": \"B\", \"responses\": [\"1\", \"2\"]}\n");
    let u = s.add_user("u", Role::Annotator, "h", "t").unwrap().id;
    use store::annotation::Judgement;
    let rank = |s: &Store| {
        let a = s.next_assignment(u, &QueuePolicy::overlap(1)).unwrap().unwrap();
        let j = Judgement { tiers: vec![vec![a.order[0]], vec![a.order[1]]], ..Default::default() };
        s.submit(u, "t", a.prompt_id, &j).unwrap()
    };
    assert_eq!(s.guidelines_version().unwrap(), 0);
    assert_eq!(s.set_guidelines("Prefer short answers.", "op").unwrap(), 1);
    assert_eq!(rank(&s).guidelines_version, 1);
    assert_eq!(s.set_guidelines("Prefer correct answers.", "op").unwrap(), 2);
    let second = rank(&s);
    assert_eq!(second.guidelines_version, 2);
    drop(s);
    // Every version's text survives a reopen, and so does what each ranking recorded.
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.guidelines().unwrap(), "Prefer correct answers.");
    assert_eq!(s.guidelines_at(1).unwrap().as_deref(), Some("Prefer short answers."));
    assert_eq!(s.guidelines_at(2).unwrap().as_deref(), Some("Prefer correct answers."));
    assert_eq!(s.guidelines_at(3).unwrap(), None);
    let mut versions: Vec<u64> = s.rankings().unwrap().iter().map(|r| r.guidelines_version).collect();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2]);
    assert!(s.rankings().unwrap().iter().any(|r| r.id == second.id));
}

#[test]
fn gold_items_are_mixed_in_at_the_rate_counted_once_for_training_and_exported_as_gold() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(
        &s,
        "{\"prompt\": \"G1\", \"responses\": [\"good\", \"bad\"], \"tiers\": [[0], [1]], \"gold\": true}\n\
         {\"prompt\": \"G2\", \"responses\": [\"bad\", \"good\"], \"tiers\": [[1], [0]], \"gold\": true}\n\
         {\"prompt\": \"A\", \"responses\": [\"1\", \"2\"]}\n{\"prompt\": \"B\", \"responses\": [\"1\", \"2\"]}\n\
         {\"prompt\": \"C\", \"responses\": [\"1\", \"2\"]}\n",
    );
    assert_eq!(s.gold_items().unwrap().len(), 2);
    let policy = QueuePolicy { overlap: 1, gold_rate: 0.5 };
    let texts = |u: u64| {
        let mut out = Vec::new();
        while let Some(a) = s.next_assignment(u, &policy).unwrap() {
            out.push(s.prompt(a.prompt_id).unwrap().unwrap().text().to_string());
            let tiers = a.order.iter().map(|&c| vec![c]).collect();
            s.submit(u, "t", a.prompt_id, &store::annotation::Judgement { tiers, ..Default::default() })
                .unwrap();
        }
        out
    };
    let ann = s.add_user("ann", Role::Annotator, "h", "t").unwrap().id;
    let bob = s.add_user("bob", Role::Annotator, "h", "t").unwrap().id;
    // Half of ann's items are gold while she has unseen gold: gold, ordinary, gold, then ordinary ones.
    assert_eq!(texts(ann), ["G1", "A", "G2", "B", "C"]);
    // Overlap 1 used up the ordinary items, but gold items have no limit: bob sees both.
    assert_eq!(texts(bob), ["G1", "G2"]);
    // Training and the exports see each gold item once, with its known order (not the two checks).
    let g1 = s.prompts().unwrap()[0].id;
    assert_eq!(s.rankings_of(g1).unwrap().len(), 2);
    let train = s.training_rankings_of(g1).unwrap();
    assert_eq!(train.len(), 1);
    assert_eq!(train[0].tiers, s.gold_of(g1).unwrap().unwrap().tiers);
    let exported = s.export_rankings().unwrap();
    assert_eq!(exported.lines().filter(|l| l.contains("\"gold\":true")).count(), 2, "{exported}");
    assert_eq!(exported.lines().count(), 2 + 3, "two gold orders and the three ordinary rankings");
    // And the file imports back with its gold items.
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = Store::open(dir2.path()).unwrap();
    import(&s2, &exported);
    assert_eq!(s2.gold_items().unwrap().len(), 2);
    assert_eq!(s2.rankings().unwrap().len(), 3);
}

#[test]
fn a_gold_order_must_cover_the_answers_and_comes_from_a_ranking_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\", \"3\"], \"tiers\": [[2], [0], [1]]}\n");
    let p = s.prompts().unwrap()[0].id;
    let c: Vec<u64> = s.candidates_of(p).unwrap().iter().map(|c| c.id).collect();
    let err = s.mark_gold(p, vec![vec![c[0]], vec![c[1]]], "op", "t").unwrap_err().to_string();
    assert!(err.contains("exactly once"), "{err}");
    assert!(s.gold_items().unwrap().is_empty(), "a refused order writes nothing");
    let r = s.rankings_of(p).unwrap()[0].clone();
    let g = s.mark_gold_from_ranking(r.id, "op").unwrap();
    assert_eq!((g.tiers.clone(), g.source.as_str()), (r.tiers.clone(), format!("ranking {}", r.id).as_str()));
    assert!(s.is_gold(p).unwrap());
    s.unmark_gold(p, "op").unwrap();
    assert!(!s.is_gold(p).unwrap());
    assert!(s.audit_log().unwrap().iter().any(|e| e.action == "gold.unmark"));
}

#[test]
fn a_paused_annotator_gets_no_items_and_their_open_one_goes_back_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    import(&s, "{\"prompt\": \"A\", \"responses\": [\"1\", \"2\"]}\n");
    let ann = s.add_user("ann", Role::Annotator, "h", "t").unwrap().id;
    let bob = s.add_user("bob", Role::Annotator, "h", "t").unwrap().id;
    let one = QueuePolicy::overlap(1);
    let a = s.next_assignment(ann, &one).unwrap().unwrap();
    assert!(s.next_assignment(bob, &one).unwrap().is_none(), "overlap 1: ann holds the only item");
    s.set_paused(ann, true, "op").unwrap();
    assert!(s.user(ann).unwrap().unwrap().paused);
    assert!(s.next_assignment(ann, &one).unwrap().is_none(), "paused: no item, not even the old one");
    assert_eq!(s.next_assignment(bob, &one).unwrap().unwrap().prompt_id, a.prompt_id, "handed back");
    s.set_paused(ann, false, "op").unwrap();
    assert!(s.next_assignment(ann, &one).unwrap().is_none(), "resumed, but bob holds the only slot now");
}
