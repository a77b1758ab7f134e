//! `alignbox models import|list|export|set-default`.

use anyhow::Context;
use trainer::registry::Registry;

use crate::cli::ModelsCommand;

/// Runs a `models` subcommand.
pub fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Import { path, name, default, data } => {
            let reg = Registry::new(&data.data_dir);
            let v = reg
                .import(&path, name.as_deref())
                .with_context(|| format!("importing {}", path.display()))?;
            if default || reg.default_id()?.is_none() {
                reg.set_default(&v.id)?;
            }
            println!("imported {} ({} parameters, {:?}) from {}", v.id, v.num_params, v.format, v.source);
        }
        ModelsCommand::List { data } => {
            let reg = Registry::new(&data.data_dir);
            let default = reg.default_id()?;
            let versions = reg.list()?;
            if versions.is_empty() {
                println!("no models in {} (import one with `alignbox models import`)", reg.root().display());
            }
            for v in versions {
                let mark = if default.as_deref() == Some(v.id.as_str()) { "*" } else { " " };
                let parents = if v.parents.is_empty() { "-".into() } else { v.parents.join(",") };
                println!(
                    "{mark} {:<32} {:<8} {:<10} {:>12} params  parents {:<12} {}",
                    v.id,
                    v.kind,
                    format!("{:?}", v.format),
                    v.num_params,
                    parents,
                    v.source
                );
            }
        }
        ModelsCommand::Export { version, dir, data } => {
            let reg = Registry::new(&data.data_dir);
            reg.export::<trainer::backend::Infer>(&version, &dir, &trainer::backend::default_device())
                .with_context(|| format!("exporting {version}"))?;
            println!("exported {version} to {}", dir.display());
        }
        ModelsCommand::SetDefault { version, data } => {
            Registry::new(&data.data_dir).set_default(&version)?;
            println!("{version} is now the default base policy");
        }
    }
    Ok(())
}
