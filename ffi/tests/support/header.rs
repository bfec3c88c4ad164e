//! Generates include/karma.h with cbindgen's library API; shared by
//! tests/header.rs (compare) and examples/gen-header.rs (write).

use std::path::{Path, PathBuf};

/// The crate directory (`ffi/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the committed header lives.
pub fn header_path() -> PathBuf {
    crate_dir().join("include").join("karma.h")
}

/// The header cbindgen produces from the crate's sources and cbindgen.toml,
/// plus the functions generated from the surface table, which cbindgen
/// reads from the source text `karma_ffi::generated_header_source` gives
/// (it does not expand macros).
pub fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    let mut generated = tempfile::Builder::new().suffix(".rs").tempfile().expect("a temporary file");
    std::io::Write::write_all(&mut generated, karma_ffi::generated_header_source().as_bytes())
        .expect("writing the generated functions");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_src(generated.path())
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

/// Writes `text` to `path` (for the generator).
#[allow(dead_code)]
pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
