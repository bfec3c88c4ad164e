//! The committed include/karma.h must be exactly what cbindgen generates
//! from the current sources, so C users never compile against a stale ABI.

mod support;

#[test]
fn committed_header_is_current() {
    let generated = support::header::generate();
    let path = support::header::header_path();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is stale (first difference at line {}).\n\
             Regenerate it and commit the result:\n\n    cargo run -p karma-ffi --example gen-header\n",
            path.display(),
            first + 1
        );
    }
}
