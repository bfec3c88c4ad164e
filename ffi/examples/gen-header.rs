//! Regenerates ffi/include/karma.h from the crate's sources:
//!
//!     cargo run -p karma-ffi --example gen-header
//!
//! Commit the result; tests/header.rs fails while it is stale.

#[path = "../tests/support/header.rs"]
mod header;

fn main() {
    let path = header::header_path();
    let text = header::generate();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old == text {
        println!("{} is up to date", path.display());
    } else {
        header::write(&path, &text);
        println!("wrote {}", path.display());
    }
}
