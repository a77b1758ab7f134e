//! `alignbox users add|list|disable`, and the first admin of an empty data directory.

use anyhow::{bail, Context};
use app::ssr::auth;
use store::{Role, Store};

use crate::{cli::UsersCommand, datadir::DataDir};

/// On an empty store, creates the `admin` account; its password comes from ALIGNBOX_ADMIN_PASSWORD or is
/// generated and printed once on stdout.
pub fn ensure_admin(store: &Store) -> anyhow::Result<()> {
    if !store.users()?.is_empty() {
        return Ok(());
    }
    let (password, generated) = match std::env::var("ALIGNBOX_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (auth::random_password(), true),
    };
    store.add_user("admin", Role::Admin, &auth::hash_password(&password), "system")?;
    if generated {
        println!("alignbox created the admin account: name admin, one-time password {password}");
    } else {
        println!("alignbox created the admin account: name admin, password from ALIGNBOX_ADMIN_PASSWORD");
    }
    Ok(())
}

/// Runs a `users` subcommand.
pub fn run(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Add { name, role, data } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?}: use annotator, operator or admin"))?;
            if name.trim().is_empty()
                || name.len() > 64
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                bail!("user name {name:?}: 1 to 64 characters, no spaces");
            }
            let (_lock, store) = DataDir::open_store(&data.data_dir)?;
            let (password, generated) = match std::env::var("ALIGNBOX_PASSWORD") {
                Ok(p) if !p.is_empty() => (p, false),
                _ => (auth::random_password(), true),
            };
            let user = store.add_user(&name, role, &auth::hash_password(&password), "cli")?;
            if generated {
                println!("added {} ({}) with password {password}", user.name, role.as_str());
            } else {
                println!("added {} ({})", user.name, role.as_str());
            }
        }
        UsersCommand::List { data } => {
            let (_lock, store) = DataDir::open_store(&data.data_dir)?;
            for u in store.users()? {
                let state = if u.disabled { "disabled" } else { "active" };
                println!("{:<24} {:<10} {state}", u.name, u.role.as_str());
            }
        }
        UsersCommand::Disable { name, data } => {
            let (_lock, store) = DataDir::open_store(&data.data_dir)?;
            let mut user = store.user_by_name(&name)?.with_context(|| format!("no user {name:?}"))?;
            user.disabled = true;
            store.update_user(&user, "cli", "disabled")?;
            println!("disabled {name}");
        }
        UsersCommand::ApiKey { name, data } => {
            let (_lock, store) = DataDir::open_store(&data.data_dir)?;
            anyhow::ensure!(!name.trim().is_empty(), "a key needs a name");
            let secret = format!("abx-{}", app::ssr::auth::random_token());
            store.add_api_key(&app::ssr::auth::token_hash(&secret), name.trim(), &secret[..10], "cli")?;
            println!("{secret}");
        }
    }
    Ok(())
}
