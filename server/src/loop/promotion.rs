//! Promotions and rollbacks of the current policy, recorded in the loop's state (by the loop, or by an operator
//! from the dashboard).

use store::Store;
use trainer::registry::{Registry, VersionKind};
use types::{ControlError, LoopState, Promotion, PromotionAction};

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::Internal(e.to_string())
}

/// Makes `version` (a policy) the current policy and records it.
pub fn promote(store: &Store, reg: &Registry, version: &str, by: &str) -> Result<(), ControlError> {
    let v = reg.get(version).map_err(|e| ControlError::NotFound(e.to_string()))?;
    if v.kind != VersionKind::Policy {
        return Err(ControlError::Invalid(format!("{version} is a {}, not a policy", v.kind)));
    }
    let previous = reg.default_id().map_err(internal)?;
    if previous.as_deref() == Some(version) {
        return Err(ControlError::Conflict(format!("{version} is already the current policy")));
    }
    reg.set_default(version).map_err(internal)?;
    let p = Promotion {
        at_ms: store::now_ms(),
        policy: version.into(),
        previous,
        by: by.into(),
        action: PromotionAction::Promote,
    };
    store
        .update_loop_state(|st: &mut LoopState| {
            st.promotions.push(p.clone());
            super::decide(st, format!("{by} made {} the current policy", p.policy));
        })
        .map_err(internal)?;
    Ok(())
}

/// Reverts the promotion that made the current policy current and drops the loop's round in progress; returns
/// the policy current afterwards.
pub fn rollback(store: &Store, reg: &Registry, by: &str) -> Result<String, ControlError> {
    let current = reg
        .default_id()
        .map_err(internal)?
        .ok_or_else(|| ControlError::Conflict("there is no current policy".into()))?;
    let st = super::state(store);
    let back = st
        .promotions
        .iter()
        .rev()
        .find(|p| p.policy == current && p.action == PromotionAction::Promote)
        .and_then(|p| p.previous.clone())
        .ok_or_else(|| {
            ControlError::Conflict(format!(
                "{current} was not promoted from another policy: nothing to roll back"
            ))
        })?;
    reg.set_default(&back).map_err(internal)?;
    let p = Promotion {
        at_ms: store::now_ms(),
        policy: back.clone(),
        previous: Some(current.clone()),
        by: by.into(),
        action: PromotionAction::Rollback,
    };
    // The round in progress (if any) was measured against the policy rolled back from: it is dropped, so that
    // no promotion of it follows the operator's rollback. Its running job finishes unheard; the next round
    // starts from the policy rolled back to.
    store
        .update_loop_state(|st: &mut LoopState| {
            st.promotions.push(p.clone());
            let dropped =
                if st.pending.take().is_some() { "; the round in progress was dropped" } else { "" };
            super::decide(st, format!("{by} rolled back from {current} to {}{dropped}", p.policy));
        })
        .map_err(internal)?;
    Ok(back)
}
