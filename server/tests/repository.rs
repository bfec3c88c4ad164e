//! The repository stands alone and keeps its safety rules without anyone
//! remembering them:
//!
//! * every crate root (library, binary, bench, example) of the workspace
//!   forbids `unsafe` code, except the crates whose job is FFI or a
//!   language binding;
//! * no file reaches outside the repository for the Karma 1.0 material it
//!   was written from (its test data is vendored under tests/).
//!
//! A new crate, binary or example without `#![forbid(unsafe_code)]`, or a
//! path back into the shared material, fails here. The checkers are tested on
//! deliberately bad inputs below, so a passing run means something.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Packages (by directory under the repository root) that exist to cross a
/// language boundary; `unsafe` is allowed there, each block with a SAFETY
/// comment.
const BINDING_DIRS: &[&str] = &["ffi", "python", "ruby", "node"];

/// Target kinds that are crate roots a user builds (tests are left out: they
/// are not shipped and some need libc to send signals to child processes).
const ROOT_KINDS: &[&str] = &["lib", "cdylib", "rlib", "staticlib", "bin", "bench", "example"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// `(package directory, crate root source file)` for every shipped target of
/// every workspace member, from `cargo metadata`.
fn crate_roots(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let mut roots = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        let dir = manifest.parent().expect("package dir").to_path_buf();
        for target in package["targets"].as_array().expect("targets") {
            let kinds = target["kind"].as_array().expect("kind");
            if kinds.iter().any(|k| ROOT_KINDS.contains(&k.as_str().unwrap_or(""))) {
                roots.push((dir.clone(), PathBuf::from(target["src_path"].as_str().expect("src_path"))));
            }
        }
    }
    roots
}

fn is_binding_package(root: &Path, dir: &Path) -> bool {
    BINDING_DIRS.iter().any(|name| dir == root.join(name))
}

/// The crate roots in `roots` that lack `#![forbid(unsafe_code)]`.
fn roots_allowing_unsafe<'a>(roots: impl IntoIterator<Item = (&'a Path, &'a str)>) -> Vec<&'a Path> {
    roots.into_iter().filter(|(_, source)| !source.contains("#![forbid(unsafe_code)]")).map(|(path, _)| path).collect()
}

#[test]
fn every_crate_without_ffi_forbids_unsafe_code() {
    let root = repo_root();
    let roots = crate_roots(&root);
    assert!(roots.iter().any(|(dir, _)| dir == &root.join("engine")), "cargo metadata lists the engine");
    let sources: Vec<(PathBuf, String)> = roots
        .into_iter()
        .filter(|(dir, _)| !is_binding_package(&root, dir))
        .map(|(_, file)| {
            let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            (file, source)
        })
        .collect();
    let missing = roots_allowing_unsafe(sources.iter().map(|(p, s)| (p.as_path(), s.as_str())));
    assert!(missing.is_empty(), "crate roots without #![forbid(unsafe_code)]: {missing:?}");
}

#[test]
fn the_unsafe_checker_reports_a_root_without_the_attribute() {
    let good = "//! doc\n\n#![forbid(unsafe_code)]\n\nfn main() {}\n";
    let bad = "//! doc\n\n#![deny(unsafe_code)]\n\nfn main() {}\n";
    let missing = roots_allowing_unsafe([(Path::new("good.rs"), good), (Path::new("bad.rs"), bad)]);
    assert_eq!(missing, vec![Path::new("bad.rs")]);
}

/// The path of the material the project was written from, assembled at run
/// time so that this file does not match itself.
fn shared_material() -> String {
    format!("{}/{}", "..", "shared")
}

/// Files under `dir` (recursively) whose text contains `needle`, skipping
/// build output, dependencies and version control.
fn files_mentioning(dir: &Path, needle: &str, found: &mut Vec<PathBuf>) {
    const SKIP: &[&str] = &["target", ".git", "node_modules", ".venv", "__pycache__"];
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if !SKIP.iter().any(|s| name == *s) {
                files_mentioning(&path, needle, found);
            }
        } else if kind.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path);
                }
            }
        }
    }
}

#[test]
fn nothing_reaches_outside_the_repository() {
    let root = repo_root();
    let mut found = Vec::new();
    files_mentioning(&root, &shared_material(), &mut found);
    assert!(found.is_empty(), "files that reach outside the repository: {found:?}");
}

#[test]
fn the_outside_reference_checker_finds_a_planted_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("docs")).expect("mkdir");
    std::fs::write(dir.path().join("docs/ok.md"), "see docs/protocol.md\n").expect("write");
    let planted = dir.path().join("docs/bad.md");
    std::fs::write(&planted, format!("see {}/spec/protocol.md\n", shared_material())).expect("write");
    std::fs::create_dir_all(dir.path().join("target")).expect("mkdir");
    std::fs::write(dir.path().join("target/ignored.txt"), shared_material()).expect("write");
    let mut found = Vec::new();
    files_mentioning(dir.path(), &shared_material(), &mut found);
    assert_eq!(found, vec![planted]);
}
