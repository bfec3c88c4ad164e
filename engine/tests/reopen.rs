//! Crash-and-reopen properties (issue 10): random sequences of every
//! mutating op, hostile variants of them, and reopens; after each reopen the
//! state equals the state acknowledged before it.

mod fuzzing;

/// The `handle_line` fuzzer's short run: a few hundred rounds of valid and
/// mutated lines, each round closed and reopened (see
/// `examples/fuzz_handle_line.rs` for long runs).
#[test]
fn mutated_lines_never_break_answers_or_state_across_reopen() {
    let rounds = std::env::var("KARMA_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    for seed in 1..=2 {
        if let Err(failure) = fuzzing::run(seed, Some(rounds), None, |_| {}) {
            panic!("{failure}");
        }
    }
}
