//! Embeds the client bundle (`target/site/pkg/*`, made by `scripts/build.sh`) into the binary when it exists, so
//! that the `alignbox` binary alone serves a hydrating app. Without a bundle the server still renders pages and
//! reads `/pkg/*` from `--site-root` at run time.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let site = env::var_os("ALIGNBOX_SITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/site"));
    let pkg = site.join("pkg");
    println!("cargo:rerun-if-env-changed=ALIGNBOX_SITE_DIR");
    println!("cargo:rerun-if-changed={}", pkg.display());

    let mut entries = Vec::new();
    if let Ok(dir) = fs::read_dir(&pkg) {
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.is_file()) {
            println!("cargo:rerun-if-changed={}", path.display());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let abs = fs::canonicalize(&path).unwrap();
            entries.push(format!("    ({name:?}, include_bytes!({:?})),\n", abs.display().to_string()));
        }
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("site_files.rs");
    let body = format!(
        "/// Files of the client bundle embedded at build time: (name under `/pkg/`, bytes).\n\
         pub static EMBEDDED: &[(&str, &[u8])] = &[\n{}];\n",
        entries.concat()
    );
    fs::write(out, body).unwrap();
}
